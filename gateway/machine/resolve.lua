-- D Mark as resolved: the customer is asked for a rating (``question``); the auto-close is due
-- ``delay`` seconds from now ('' when off).
OPS.resolve = function(A, chat)
  local id, agent = chat.id, A.agent
  redis.call('HSET', conv_key(id), 'state', 'resolved', 'resolved_at', now)
  redis.call('ZADD', key('resolved'), now, id)
  local token = redis.call('HINCRBY', conv_key(id), 'close_token', 1)
  touch(id, 'resolved', agent)
  to_customer(id, A.question, append(id, 'out', A.question, 'system'))
  to_agents(id, 'resolved', 0, agent, '', A.via)
  if tonumber(A.delay or '') then set_timer('auto_close', id, tostring(token), now + tonumber(A.delay)) end
  return reply({event = 'resolved', id = id, token = tostring(token)})
end
