-- F Reject: the agent declines a new chat; it stays in the Inbox for the others.
OPS.reject = function(A, chat)
  local id, agent = chat.id, A.agent
  if redis.call('SADD', key('declined', id), agent) == 0 then return refused('already_declined') end
  redis.call('SADD', key('inbox', 'declined', agent), id)
  to_agents(id, 'declined', 0, agent, '', A.via)
  if field(id, 'head_start_for') == agent then
    -- The previous agent passed on their head start: everyone gets the chat now.
    redis.call('HSET', conv_key(id), 'head_start_for', '', 'offered_at', now)
    to_agents(id, 'offered', 0)
  end
  return reply({event = 'declined', id = id})
end
