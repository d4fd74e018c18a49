-- C Leave: a resolved chat closes; an active one goes back to the Inbox, the agent remembered as previous.
OPS.leave = function(A, chat)
  local id, agent = chat.id, A.agent
  if chat.state == 'resolved' then return close(id, A.via) end
  redis.call('HSET', conv_key(id), 'state', 'new', 'assignee', '', 'previous_agent', agent)
  redis.call('ZREM', key('assigned', agent), id)
  release_holder(id)
  touch(id, 'new', '')
  to_agents(id, 'left', 0, agent, '', A.via)
  return reply({event = 'left', id = id})
end
