-- An admin moves an accepted chat to ``target``, between the Assigned lists at once; ``capacity``
-- is the target's most active chats (0: no limit).
OPS.reassign = function(A, chat)
  local id, target, assignee = chat.id, A.target, chat.assignee
  if assignee == target then return refused('already_assigned', target) end
  if chat.state == 'active' then
    local full = over_capacity(target, A.capacity)
    if full then return full end
  end
  take_holder(id, target)
  redis.call('HSET', conv_key(id), 'assignee', target, 'last_agent', target)
  redis.call('ZREM', key('assigned', assignee), id)
  touch(id, chat.state, target)
  to_agents(id, 'reassigned', 0, A.agent, target, A.via)
  return reply({event = 'reassigned', id = id, previous = assignee})
end
