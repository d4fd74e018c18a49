-- The assignee's Retry on a message ``seq`` that finally failed: queue it again, in order behind
-- whatever is already waiting for the customer.
OPS.redeliver = function(A, chat)
  local id, seq = chat.id, tonumber(A.seq)
  local raw = redis.call('LINDEX', key('msgs', id), seq - 1)
  if not raw then return refused('unknown') end
  local message = cjson.decode(raw)
  if message.dir ~= 'out' or message.status ~= 'failed' then return refused('not_failed') end
  if redis.call('EXISTS', key('optout', field(id, 'channel'), field(id, 'customer_id'))) == 1 then
    return refused('opted_out')
  end
  message.status = 'queued'
  if (tonumber(field(id, 'undelivered')) or 0) > 0 then redis.call('HINCRBY', conv_key(id), 'undelivered', -1) end
  message.detail = nil
  redis.call('LSET', key('msgs', id), seq - 1, cjson.encode(message))
  to_customer(id, message.text, seq, message.template or false, message.attachments)
  to_agents(id, 'redelivering', seq, A.agent, '', A.via)
  return reply({event = 'redelivering', id = id})
end
