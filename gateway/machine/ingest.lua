-- A customer's message: a new conversation, a message on the open one, a reopen or a rating.
OPS.ingest = function(A)
  local channel, customer, platform_id = A.channel, A.customer, A.platform_id
  local text, name, phone, location = A.text, A.name, A.phone, A.location
  local attachments, topic, rating_thanks, seen_ttl = A.attachments, A.topic, A.rating_thanks, tonumber(A.seen_ttl)
  local head_start = A.head_start == '1'
  local team_only = A.team_only or ''  -- '1' while only the topic's team may accept
  -- Timers a new chat starts (seconds from now, 0: none): head start, topic team's wait, first-response SLA.
  local head_start_after = tonumber(A.head_start_after) or 0
  local fallback_after, sla_after = tonumber(A.fallback_after) or 0, tonumber(A.sla_after) or 0

  if seen_before(channel, platform_id, seen_ttl) then
    return reply({event = 'duplicate', id = redis.call('GET', key('open', channel, customer)) or ''})
  end

  -- The customer's profile outlives conversations: a phone shared once stays known.
  local profile = key('customer', channel, customer)
  if name ~= '' then redis.call('HSET', profile, 'name', name) end
  if phone ~= '' then redis.call('HSET', profile, 'phone', phone) end
  if location ~= '' then redis.call('HSET', profile, 'location', location) end
  local known = redis.call('HMGET', profile, 'name', 'phone', 'location')

  local id = redis.call('GET', key('open', channel, customer))
  local event
  if not id then
    id = tostring(redis.call('INCR', key('next_id')))
    local previous = ''
    local last = redis.call('GET', key('last', channel, customer))
    if last then previous = field(last, 'last_agent') end
    redis.call('HSET', conv_key(id),
      'id', id, 'channel', channel, 'customer_id', customer, 'state', 'new', 'topic', topic,
      'created_at', now, 'updated_at', now, 'query', text,
      'name', known[1] or '', 'phone', known[2] or '', 'location', known[3] or '',
      'assignee', '', 'previous_agent', previous, 'last_agent', '',
      'messages_in', 0, 'messages_out', 0, 'seq', 0, 'close_token', 0)
    -- Routing: a returning customer's previous agent has the chat alone until it is offered.
    if head_start and previous ~= '' then
      redis.call('HSET', conv_key(id), 'head_start_for', previous)
      set_timer('offer', id, '', now + head_start_after)
    end
    if team_only == '1' then
      redis.call('HSET', conv_key(id), 'team_only', '1')
      if fallback_after > 0 then set_timer('open_to_all', id, '', now + fallback_after) end
    end
    if sla_after > 0 then set_timer('escalate', id, '1', now + sla_after) end
    redis.call('SET', key('open', channel, customer), id)
    event = 'created'
  else
    redis.call('HSET', conv_key(id), 'name', known[1] or '', 'phone', known[2] or '', 'location', known[3] or '')
    local state = field(id, 'state')
    event = 'message'
    if state == 'resolved' then
      if field(id, 'rating') == '' and string.match(text, '^%s*[1-5]%s*$') then
        redis.call('HSET', conv_key(id), 'rating', tonumber(string.match(text, '[1-5]')))
        record_rating(tonumber(string.match(text, '[1-5]')))
        event = 'rated'
      else
        -- Anything but a first rating reopens the chat to the same agent; bumping
        -- the token makes a pending auto-close a no-op.
        redis.call('HSET', conv_key(id), 'state', 'active')
        redis.call('HDEL', conv_key(id), 'resolved_at')
        redis.call('ZREM', key('resolved'), id)
        clear_timer('auto_close', id, field(id, 'close_token'))
        redis.call('HINCRBY', conv_key(id), 'close_token', 1)
        event = 'reopened'
      end
    end
  end

  local seq = append(id, 'in', text, 'customer', attachments)
  redis.call('HINCRBY', conv_key(id), 'messages_in', 1)
  -- Platforms with a reply window (WhatsApp's 24 hours) count from the customer's last message.
  redis.call('HSET', conv_key(id), 'last_customer_at', now)
  if field(id, 'first_customer_at') == '' then
    redis.call('HSET', conv_key(id), 'first_customer_at', now)
  end
  touch(id, field(id, 'state'), field(id, 'assignee'))
  to_agents(id, event, seq)
  local thanked = '0'
  if event == 'rated' and rating_thanks ~= '' then
    to_customer(id, rating_thanks, append(id, 'out', rating_thanks, 'system'))
    thanked = '1'
  end
  return reply({event = event, id = id, seq = seq, thanked = thanked == '1',
                head_start_for = field(id, 'head_start_for')})
end
