-- After chats left the Inbox: each waiting customer who was told a place and has moved up by at
-- least ``step`` since hears their new place (``template``; once per step; never after Accept).
OPS.queue_positions = function(A)
  local step, template = tonumber(A.step), A.template
  local told = {}
  for index, entry in ipairs(queue_order()) do
    local found = redis.call('HMGET', conv_key(entry.id), 'queue_told', 'accepted_at')
    local before = tonumber(found[1])
    if before and (found[2] or '') == '' and before - index >= step then
      tell_position(entry.id, index, template)
      table.insert(told, {field(entry.id, 'channel'), field(entry.id, 'customer_id')})
    end
  end
  if #told == 0 then return '{"event":"queue_positions","told":[]}' end
  return reply({event = 'queue_positions', told = told})
end
