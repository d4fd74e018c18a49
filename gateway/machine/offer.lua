-- The returning customer's head start is over: the chat is offered to everyone.
OPS.offer = function(A)
  local id = A.conversation
  if redis.call('EXISTS', conv_key(id)) == 0 then return refused('unknown') end
  if field(id, 'state') ~= 'new' or field(id, 'offered_at') ~= '' then return refused('stale') end
  redis.call('HSET', conv_key(id), 'offered_at', now, 'head_start_for', '')
  to_agents(id, 'offered', 0)
  return reply({event = 'offered', id = id})
end

TIMERS.offer = function(id) return run_op('offer', {conversation = id}) end
