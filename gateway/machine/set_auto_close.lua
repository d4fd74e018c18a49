-- The admin's auto-close switch. Every resolved chat gets a new close token, so any auto-close
-- already scheduled is stale. When on, each gets a new one ``delay`` seconds from now.
OPS.set_auto_close = function(A)
  local enabled, after, delay = A.enabled, A.after, tonumber(A.delay or '')
  redis.call('HSET', key('settings'), 'auto_close', enabled, 'auto_close_after', after)
  local count = 0
  for _, resolved in ipairs(redis.call('ZRANGE', key('resolved'), 0, -1)) do
    clear_timer('auto_close', resolved, field(resolved, 'close_token'))
    local token = tostring(redis.call('HINCRBY', conv_key(resolved), 'close_token', 1))
    if enabled == '1' and delay then set_timer('auto_close', resolved, token, now + delay) end
    count = count + 1
  end
  return reply({event = 'auto_close_set', count = count})
end
