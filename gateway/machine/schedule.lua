-- A timer the workers run in Python (queue positions, console tasks), ``delay`` seconds from now.
OPS.schedule = function(A)
  set_timer(A.kind, A.subject, A.arg, now + (tonumber(A.delay) or 0))
  return reply({event = 'scheduled'})
end
