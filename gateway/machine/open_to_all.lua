-- Nobody on the topic's team accepted in time (or the team has no one): everyone may take it.
OPS.open_to_all = function(A)
  local id = A.conversation
  if redis.call('EXISTS', conv_key(id)) == 0 then return refused('unknown') end
  if field(id, 'state') ~= 'new' or field(id, 'team_only') ~= '1' then return refused('stale') end
  local score = redis.call('ZSCORE', key('inbox'), id)
  if score then redis.call('ZREM', (inbox_leaf(id)), id) end  -- from the team's leaf...
  redis.call('HSET', conv_key(id), 'team_only', '', 'opened_to_all_at', now)
  if score then enter_leaf(id, score) end  -- ...to the open one, same place in the Inbox
  to_agents(id, 'opened_to_all', 0)
  return reply({event = 'opened_to_all', id = id})
end

TIMERS.open_to_all = function(id) return run_op('open_to_all', {conversation = id}) end
