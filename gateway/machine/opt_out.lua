-- The customer opted out of (``out`` '1') or back into ('0') messages on a channel; while out,
-- agents' replies are refused. Replies whether they were out before.
OPS.opt_out = function(A)
  local flag = key('optout', A.channel, A.customer)
  local was = tostring(redis.call('EXISTS', flag))
  if A.out == '1' then redis.call('SET', flag, now) else redis.call('DEL', flag) end
  return reply({event = 'ok', was_out = was == '1'})
end
