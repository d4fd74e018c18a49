-- A due timer (gateway/jobs.py) ``member`` ("kind|subject|arg"): taken off the set (once, whoever
-- fires it), then run by its kind's TIMERS function; ``extra`` is what that kind needs more.
OPS.fire = function(A)
  if redis.call('ZREM', key('timers'), A.member) == 0 then return refused('stale') end
  local kind, subject, arg = string.match(A.member, '^([^|]*)|([^|]*)|(.*)$')
  local timer = TIMERS[kind]
  if not timer then return redis.error_reply('no timer of kind ' .. tostring(kind)) end
  return timer(subject, arg, A.extra or '')
end
