-- Record what happened to an outbound message ``seq``: sent (with the platform's id) or failed.
OPS.delivery = function(A)
  local id, seq, status, detail = A.conversation, tonumber(A.seq), A.status, A.detail
  local raw = redis.call('LINDEX', key('msgs', id), seq - 1)
  if not raw then return refused('unknown') end
  local message = cjson.decode(raw)
  -- Status callbacks may arrive late or twice: never step back (delivered → sent),
  -- and a failure is final (and reported once).
  local rank = {queued = 1, sent = 2, delivered = 3, read = 4, failed = 5}
  local current = message.status or ''
  if current == 'failed' or (rank[status] or 0) < (rank[current] or 0) then return reply({event = 'ok', id = id}) end
  message.status = status
  if detail ~= '' then message.detail = detail end
  redis.call('LSET', key('msgs', id), seq - 1, cjson.encode(message))
  if status == 'failed' then
    -- Counted on the conversation so the consoles can flag it until a Retry.
    redis.call('HINCRBY', conv_key(id), 'undelivered', 1)
    to_agents(id, 'delivery_failed', seq)
  end
  return reply({event = 'ok', id = id})
end
