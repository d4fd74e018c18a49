-- E Accept: the agent takes a new chat; exactly one agent wins a race. ``serves``: '1' when the agent
-- is on the chat's topic team (or it has none); ``capacity``: their most active chats (0: no limit);
-- ``tell_queue``: '1' when the waiting customers behind it are told their new place.
OPS.accept = function(A, chat)
  local id, agent = chat.id, A.agent
  if chat.state ~= 'new' then
    if chat.assignee == agent then return refused('already_yours', agent) end
    return refused('taken', chat.assignee)
  end
  local holder = field(id, 'head_start_for')
  if holder ~= '' and holder ~= agent then return refused('head_start', holder) end
  if field(id, 'team_only') == '1' and holder ~= agent and A.serves ~= '1' then
    return refused('not_in_team', field(id, 'topic'))
  end
  local full = over_capacity(agent, A.capacity)
  if full then return full end
  take_holder(id, agent)
  redis.call('HSET', conv_key(id), 'state', 'active', 'assignee', agent, 'last_agent', agent,
    'accepted_at', now, 'head_start_for', '')
  leave_inbox(id)
  touch(id, 'active', agent)
  to_agents(id, 'accepted', 0, agent, '', A.via)
  if A.tell_queue == '1' then set_timer('queue_positions', '', '', now) end
  return reply({event = 'accepted', id = id})
end
