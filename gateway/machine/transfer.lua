-- The assignee hands an active chat to ``target`` (who has at most ``capacity`` active chats, 0: no
-- limit), with a ``note`` kept in the history.
OPS.transfer = function(A, chat)
  local id, agent, target, note = chat.id, A.agent, A.target, A.note
  if target == agent then return refused('transfer_self') end
  local full = over_capacity(target, A.capacity)
  if full then return full end
  local seq = 0
  if note ~= '' then seq = append(id, 'note', note, agent) end
  take_holder(id, target)
  redis.call('HSET', conv_key(id), 'assignee', target, 'last_agent', target, 'previous_agent', agent)
  redis.call('ZREM', key('assigned', agent), id)
  touch(id, 'active', target)
  to_agents(id, 'transferred', seq, agent, target, A.via)
  return reply({event = 'transferred', id = id, seq = seq})
end
