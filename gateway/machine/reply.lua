-- The assignee's message to the customer (``text``, ``files`` a JSON list), once per ``platform_id``.
-- A channel's reply window (``window`` seconds, '' for none): outside it, the configured template
-- goes instead (``template`` '1'), or the reply is refused at once.
OPS.reply = function(A, chat)
  local id, agent, text = chat.id, A.agent, A.text
  if redis.call('EXISTS', key('optout', field(id, 'channel'), field(id, 'customer_id'))) == 1 then
    return refused('opted_out')
  end
  local window, template = tonumber(A.window or ''), false
  if window then
    local last = tonumber(field(id, 'last_customer_at')) or tonumber(field(id, 'first_customer_at')) or 0
    if now - last > window then
      if A.template ~= '1' then return refused('outside_window') end
      template = true
    end
  end
  if seen_before('agent', A.platform_id, tonumber(A.seen_ttl)) then return reply({event = 'duplicate', id = id}) end
  local files = A.files or '[]'
  if files == '' then files = '[]' end
  local seq = append(id, 'out', text, agent, files)
  if template then
    local raw = redis.call('LINDEX', key('msgs', id), seq - 1)
    local message = cjson.decode(raw)
    message.template = true
    redis.call('LSET', key('msgs', id), seq - 1, cjson.encode(message))
  end
  redis.call('HINCRBY', conv_key(id), 'messages_out', 1)
  touch(id, 'active', agent)
  to_customer(id, text, seq, template, files)
  local first = field(id, 'first_response_at') == ''
  if first then
    redis.call('HSET', conv_key(id), 'first_response_at', now)
    record_first_response(now - tonumber(field(id, 'first_customer_at')), id)
  end
  -- The first reply sets First Response, which the consoles show.
  to_agents(id, first and 'first_response' or 'replied', seq, agent, '', A.via)
  return reply({event = 'replied', id = id, seq = seq, first = first})
end
