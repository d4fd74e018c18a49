-- A new chat's automatic messages: the ``away`` message (outside business hours) and the customer's
-- place in the queue (``template``, with {position}). Runs once per conversation (``welcomed``).
OPS.welcome = function(A)
  local id, away, template = A.conversation, A.away, A.template
  if redis.call('EXISTS', conv_key(id)) == 0 then return refused('unknown') end
  if redis.call('HSETNX', conv_key(id), 'welcomed', now) == 0 then return refused('stale') end
  if away ~= '' then to_customer(id, away, append(id, 'out', away, 'system')) end
  local position = 0
  if template ~= '' and field(id, 'state') == 'new' then
    position = queue_position(id)
    if position > 0 then tell_position(id, position, template) end
  end
  return reply({event = 'welcomed', id = id, position = position})
end
