-- First-response SLA: a chat never accepted, still waiting. Counted per chat and in total; the next
-- check is due ``next`` seconds from now (0: none).
OPS.escalate = function(A)
  local id = A.conversation
  if redis.call('EXISTS', conv_key(id)) == 0 then return refused('unknown') end
  if field(id, 'state') ~= 'new' or field(id, 'accepted_at') ~= '' then return refused('stale') end
  local count = redis.call('HINCRBY', conv_key(id), 'escalations', 1)
  redis.call('HSET', conv_key(id), 'escalated_at', now)
  redis.call('INCR', key('escalations_total'))
  to_agents(id, 'escalated', 0)
  if (tonumber(A.next) or 0) > 0 then set_timer('escalate', id, tostring(count + 1), now + tonumber(A.next)) end
  return reply({event = 'escalated', id = id, count = count})
end

TIMERS.escalate = function(id, _, next) return run_op('escalate', {conversation = id, next = next}) end
