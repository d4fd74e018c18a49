-- The conversation state machine: every transition of docs/conversations.md, atomic in Redis.
--
-- The state table and the operations are described in docs/conversations.md.
--
-- KEYS[1] is the hash-tagged key prefix, e.g. "{chatgate}"; every key this
-- script touches starts with it, so all of them live in one Cluster slot.
-- ARGV[1] is the operation, ARGV[2] the time (seconds, float), ARGV[3] the
-- enabled consoles (comma-separated: each gets its own outbox per
-- conversation), ARGV[4] and ARGV[5] what jobs.lua (prepended) needs to write
-- RQ jobs; the operation's own arguments follow (A[1], A[2], ...).
-- Replies are JSON objects read by name: {"event": ..., ...} or
-- {"refused": code, "detail": ...}.

local P = KEYS[1]
local op = ARGV[1]
local now = tonumber(ARGV[2])
local consoles = {}
for name in string.gmatch(ARGV[3], '[^,]+') do table.insert(consoles, name) end
local A = {}
for i = 6, #ARGV do A[i - 5] = ARGV[i] end

local function reply(t) return cjson.encode(t) end

local function key(...)
  return P .. ':' .. table.concat({...}, ':')
end

local function conv_key(id) return key('conv', id) end

local function field(id, name)
  local value = redis.call('HGET', conv_key(id), name)
  if value == false then return '' end
  return value
end

-- The Inbox's indexes, so that a page reads only what it shows (Store.inbox_for). Besides ``inbox``:
-- one sorted set ("leaf") per channel, topic and who may take the chat ("open", or "team" while
-- team-only), with the Inbox's scores; their names in the hash ``inbox:leaves`` (name -> [kind,
-- channel, topic]); per agent the waiting chats they declined (``inbox:declined:<agent>``); and the
-- waiting chats by creation (``inbox:queue``) for queue positions.
local function inbox_leaf(id)
  local found = redis.call('HMGET', conv_key(id), 'channel', 'topic', 'team_only')
  local kind, channel, topic = found[3] == '1' and 'team' or 'open', found[1] or '', found[2] or ''
  return key('inbox', kind, channel, topic), cjson.encode({kind, channel, topic})
end

local function enter_leaf(id, score)
  local leaf, meta = inbox_leaf(id)
  redis.call('ZADD', leaf, score, id)
  redis.call('HSET', key('inbox', 'leaves'), leaf, meta)
end

-- ``declined:<id>`` says who declined the chat; their own lists hold it only while it waits.
local function decliners_see(id, waiting)
  for _, agent in ipairs(redis.call('SMEMBERS', key('declined', id))) do
    redis.call(waiting and 'SADD' or 'SREM', key('inbox', 'declined', agent), id)
  end
end

local function enter_inbox(id, score)
  redis.call('ZADD', key('inbox'), score, id)
  enter_leaf(id, score)
  redis.call('ZADD', key('inbox', 'queue'), tonumber(field(id, 'created_at')) or 0, id)
  decliners_see(id, true)
end

local function leave_inbox(id)
  redis.call('ZREM', key('inbox'), id)
  redis.call('ZREM', (inbox_leaf(id)), id)
  redis.call('ZREM', key('inbox', 'queue'), id)
  decliners_see(id, false)
end

-- The indexes of chats already waiting when a deployment got them: built from ``inbox`` by steps of
-- ``count`` chats, oldest activity first, so Redis is never blocked long (1,000 chats: 20 to 100 ms).
-- A chat that moves or leaves meanwhile is kept by touch/accept/close themselves; the cursor (in
-- ``inbox:indexed``: "<score> <id>", "1" when done) only has to reach every chat that does not move.
-- ``restart``: forget the leaves and the queue and start over (a repair). True when done.
local function index_step(count, restart)
  local cursor = redis.call('GET', key('inbox', 'indexed')) or ''
  if restart then
    for _, leaf in ipairs(redis.call('HKEYS', key('inbox', 'leaves'))) do redis.call('DEL', leaf) end
    redis.call('DEL', key('inbox', 'leaves'), key('inbox', 'queue'))
    cursor = ''
  end
  if cursor == '1' then return true, 0 end
  local entries, low = {}, '-inf'
  if cursor ~= '' then
    local score, last = string.match(cursor, '^(%S+) (.*)$')
    -- the rest of the chats with the cursor's score (ids compare as Redis orders them: digits)
    local same = redis.call('ZRANGEBYSCORE', key('inbox'), score, score, 'WITHSCORES')
    for i = 1, #same, 2 do
      if same[i] > last then table.insert(entries, same[i]) table.insert(entries, same[i + 1]) end
    end
    low = '(' .. score
  end
  local later = redis.call('ZRANGEBYSCORE', key('inbox'), low, '+inf', 'WITHSCORES', 'LIMIT', 0, count)
  for _, item in ipairs(later) do table.insert(entries, item) end
  for i = 1, #entries, 2 do enter_inbox(entries[i], entries[i + 1]) end
  local done = #later < 2 * count
  if done then
    redis.call('SET', key('inbox', 'indexed'), '1')
  elseif #entries > 0 then
    redis.call('SET', key('inbox', 'indexed'), entries[#entries] .. ' ' .. entries[#entries - 1])
  end
  return done, #entries / 2
end

-- Whether the Inbox's indexes are complete; else one more step (they are at once for a small Inbox).
local function inbox_indexed()
  return redis.call('GET', key('inbox', 'indexed')) == '1' or (index_step(1000, false))
end

-- Keep the Inbox and Assigned lists ordered by last activity.
local function touch(id, state, assignee)
  if state == 'new' then
    enter_inbox(id, now)
  elseif (state == 'active' or state == 'resolved') and assignee ~= '' then
    redis.call('ZADD', key('assigned', assignee), now, id)
  end
  redis.call('HSET', conv_key(id), 'updated_at', now)
end

-- Append a message to the conversation's history; its seq is its 1-based index.
local function append(id, direction, text, by, attachments)
  local seq = redis.call('HINCRBY', conv_key(id), 'seq', 1)
  -- Empty fields are left out: a history holds every message of every open chat.
  local entry = {seq = seq, dir = direction, text = text, by = by, at = now}
  if attachments and attachments ~= '[]' then entry.attachments = attachments end
  if direction == 'out' then entry.status = 'queued' end
  redis.call('RPUSH', key('msgs', id), cjson.encode(entry))
  return seq
end

-- Every outbox push is also noted in the dirty set, so a sweep can restart the
-- drain of an outbox whose worker died (see workers/outbox.py); an idle outbox
-- gets its drain job in this same call (jobs.lua).
local function push_out(outbox, item)
  redis.call('RPUSH', outbox, item)
  redis.call('ZADD', key('dirty'), 'NX', now, outbox)  -- since when it has had items
  wake_drain(outbox)
end

-- Events for the agents' consoles, one outbox per console, each delivered in order by the workers.
local function to_agents(id, event, seq, by, to, via)
  -- Short names, empty fields left out: an item per console per event (gateway/events.py reads them).
  local fields = {c = id, e = event, t = now}
  if seq and seq ~= 0 then fields.s = seq end
  if by and by ~= '' then fields.b = by end
  if to and to ~= '' then fields.o = to end
  if via and via ~= '' then fields.v = via end
  local item = cjson.encode(fields)
  for _, console in ipairs(consoles) do
    push_out(key('out', 'console', console, id), item)
  end
end

local function to_customer(id, text, seq, template, attachments)
  local channel = field(id, 'channel')
  local customer = field(id, 'customer_id')
  push_out(key('out', 'customer', channel, customer), cjson.encode({
    channel = channel, customer_id = customer, text = text, conversation_id = id, seq = seq or 0,
    template = template or false, attachments = attachments or '[]',
  }))
end

-- A platform message id seen before (a platform's retry): true the second time.
-- An empty id is never a repeat.
local function seen_before(scope, platform_id, ttl)
  if platform_id == '' then return false end
  return not redis.call('SET', key('seen', scope, platform_id), '1', 'NX', 'EX', ttl)
end

local function refused(code, detail)
  return reply({refused = code, detail = detail or ''})
end

-- Common checks for Go back, Speaker, Leave and Resolve (A-D): only the assignee of an accepted chat.
local function check_assignee(id, agent)
  if redis.call('EXISTS', conv_key(id)) == 0 then return refused('unknown') end
  local state = field(id, 'state')
  local assignee = field(id, 'assignee')
  if state == 'closed' then return refused('closed') end
  if state == 'new' then return refused('not_accepted') end
  if assignee ~= agent then return refused('not_assignee', assignee) end
  return nil
end

-- --- issue 11 routing: who held the chat when, and how many active chats an agent holds ---
-- ``holders`` (a JSON list on the conversation): {agent, from, to}; ``to`` is 0 while held.
local function holders_of(id)
  local raw = field(id, 'holders')
  if raw == '' or raw == '[]' or raw == '{}' then return {} end
  return cjson.decode(raw)
end

local function save_holders(id, list)
  if #list == 0 then redis.call('HSET', conv_key(id), 'holders', '[]') return end
  redis.call('HSET', conv_key(id), 'holders', cjson.encode(list))
end

local function release_holder(id)
  local list = holders_of(id)
  if #list > 0 and tonumber(list[#list].to) == 0 then
    list[#list].to = now
    save_holders(id, list)
  end
end

local function take_holder(id, agent)
  release_holder(id)
  local list = holders_of(id)
  table.insert(list, {agent = agent, from = now, to = 0})
  save_holders(id, list)
end

-- Active chats the agent holds now (resolved ones do not count).
local function active_load(agent)
  local count = 0
  for _, held in ipairs(redis.call('ZRANGE', key('assigned', agent), 0, -1)) do
    if redis.call('HGET', conv_key(held), 'state') == 'active' then count = count + 1 end
  end
  return count
end

-- nil when ``agent`` may take one more active chat with ``capacity`` (0: unlimited), else the refusal.
local function over_capacity(agent, capacity)
  capacity = tonumber(capacity) or 0
  if capacity > 0 and active_load(agent) >= capacity then
    return refused('at_capacity', agent)
  end
  return nil
end
-- --- end issue 11 routing ---

-- ``via``: the console of the agent who closed it (Leave on a resolved chat), '' for the auto-close.
local function close(id, via)
  local assignee = field(id, 'assignee')
  local channel = field(id, 'channel')
  local customer = field(id, 'customer_id')
  redis.call('HSET', conv_key(id), 'state', 'closed', 'closed_at', now)
  if redis.call('GET', key('open', channel, customer)) == id then
    redis.call('DEL', key('open', channel, customer))
  end
  redis.call('SET', key('last', channel, customer), id)
  if assignee ~= '' then redis.call('ZREM', key('assigned', assignee), id) end
  leave_inbox(id)
  redis.call('ZADD', key('closed'), now, id)
  redis.call('ZREM', key('resolved'), id)
  clear_timer('auto_close', id, field(id, 'close_token'))
  redis.call('HSET', conv_key(id), 'updated_at', now)
  release_holder(id)  -- issue 11 routing
  to_agents(id, 'closed', 0, assignee, '', via)
  return reply({event = 'closed', id = id})
end

-- Team figures, one small key per UTC day so a figure is one or two calls (see Store.figures).
local day = math.floor(now / 86400)

local function record_first_response(seconds, id)
  redis.call('ZADD', key('first_response', day), seconds, id)
  redis.call('EXPIRE', key('first_response', day), 2 * 86400)
end

local function record_rating(rating)
  redis.call('HINCRBY', key('ratings', day), 'count', 1)
  redis.call('HINCRBY', key('ratings', day), 'sum', rating)
  redis.call('EXPIRE', key('ratings', day), 8 * 86400)
end

if op == 'set_auto_close' then
  -- The admin's auto-close switch. Every resolved chat gets a new close token, so
  -- any auto-close already scheduled is stale. When on, each gets a new one A[3] seconds from now.
  local enabled, after, delay = A[1], A[2], tonumber(A[3] or '')
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

if op == 'ingest' then
  local channel, customer, platform_id = A[1], A[2], A[3]
  local text, name, phone, location = A[4], A[5], A[6], A[7]
  local attachments, topic, rating_thanks, seen_ttl = A[8], A[9], A[10], tonumber(A[11])
  local head_start = A[12] == '1'
  local team_only = A[13] or ''  -- issue 11 routing: '1' while only the topic's team may accept
  -- Timers a new chat starts (seconds from now, 0: none): head start, topic team's wait, first-response SLA.
  local head_start_after, fallback_after, sla_after = tonumber(A[14]) or 0, tonumber(A[15]) or 0, tonumber(A[16]) or 0

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
    if team_only == '1' then  -- issue 11 routing
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

if op == 'fire' then
  -- A due timer (gateway/jobs.py): taken off the set (once, whoever fires it), then run as the
  -- operation it names with its subject and argument; A[2] is what that operation needs more.
  if redis.call('ZREM', key('timers'), A[1]) == 0 then return refused('stale') end
  local kind, subject, arg = string.match(A[1], '^([^|]*)|([^|]*)|(.*)$')
  op, A = kind, {subject, arg, A[2] or ''}
  if op == 'ready' then op = 'requeue' end
end

if op == 'schedule' then
  -- A timer the workers run in Python (queue positions, console tasks): kind, subject, arg, delay.
  set_timer(A[1], A[2], A[3], now + (tonumber(A[4]) or 0))
  return reply({event = 'scheduled'})
elseif op == 'requeue' then
  -- An outbox whose platform asked it to wait (pacing) goes back on the ready list (still marked).
  redis.call('RPUSH', key('ready'), A[1])
  if redis.call('SET', key('drainer'), '1', 'NX', 'EX', 60) then
    rq_enqueue('workers.jobs.drain_ready', {'ready'}, JOBS.queue, false)
  end
  return reply({event = 'requeued'})
elseif op == 'queue_customer' then
  -- A message outside any conversation (the greeting): channel, customer, the outbound item.
  push_out(key('out', 'customer', A[1], A[2]), A[3])
  return reply({event = 'queued'})
end

local id = A[1]

if op == 'accept' then
  local agent = A[2]
  if redis.call('EXISTS', conv_key(id)) == 0 then return refused('unknown') end
  local state = field(id, 'state')
  if state == 'closed' then return refused('closed') end
  if state ~= 'new' then
    local assignee = field(id, 'assignee')
    if assignee == agent then return refused('already_yours', agent) end
    return refused('taken', assignee)
  end
  local holder = field(id, 'head_start_for')
  if holder ~= '' and holder ~= agent then return refused('head_start', holder) end
  -- issue 11 routing: A[4] '1' when the agent serves the chat's topic, A[5] their capacity.
  if field(id, 'team_only') == '1' and holder ~= agent and A[4] ~= '1' then
    return refused('not_in_team', field(id, 'topic'))
  end
  local full = over_capacity(agent, A[5])
  if full then return full end
  take_holder(id, agent)
  -- end issue 11 routing
  redis.call('HSET', conv_key(id), 'state', 'active', 'assignee', agent, 'last_agent', agent,
    'accepted_at', now, 'head_start_for', '')
  leave_inbox(id)
  touch(id, 'active', agent)
  to_agents(id, 'accepted', 0, agent, '', A[3])
  -- desk: the waiting customers behind it moved up (A[6] '1' when they are told their place).
  if A[6] == '1' then set_timer('queue_positions', '', '', now) end
  return reply({event = 'accepted', id = id})

elseif op == 'reject' then
  local agent = A[2]
  if redis.call('EXISTS', conv_key(id)) == 0 then return refused('unknown') end
  local state = field(id, 'state')
  if state ~= 'new' then
    if state == 'closed' then return refused('closed') end
    return refused('not_new', field(id, 'assignee'))
  end
  if redis.call('SADD', key('declined', id), agent) == 0 then return refused('already_declined') end
  redis.call('SADD', key('inbox', 'declined', agent), id)
  to_agents(id, 'declined', 0, agent, '', A[3])
  if field(id, 'head_start_for') == agent then
    -- The previous agent passed on their head start: everyone gets the chat now.
    redis.call('HSET', conv_key(id), 'head_start_for', '', 'offered_at', now)
    to_agents(id, 'offered', 0)
  end
  return reply({event = 'declined', id = id})

elseif op == 'resolve' then
  local agent, question = A[2], A[3]
  local refusal = check_assignee(id, agent)
  if refusal then return refusal end
  if field(id, 'state') == 'resolved' then return refused('already_resolved') end
  redis.call('HSET', conv_key(id), 'state', 'resolved', 'resolved_at', now)
  redis.call('ZADD', key('resolved'), now, id)
  local token = redis.call('HINCRBY', conv_key(id), 'close_token', 1)
  touch(id, 'resolved', agent)
  to_customer(id, question, append(id, 'out', question, 'system'))
  to_agents(id, 'resolved', 0, agent, '', A[4])
  -- The auto-close, A[5] seconds from now ('' when off).
  if tonumber(A[5] or '') then set_timer('auto_close', id, tostring(token), now + tonumber(A[5])) end
  return reply({event = 'resolved', id = id, token = tostring(token)})

elseif op == 'leave' then
  local agent = A[2]
  local refusal = check_assignee(id, agent)
  if refusal then return refusal end
  if field(id, 'state') == 'resolved' then return close(id, A[3]) end
  -- Active chat handed back to the Inbox; the agent is remembered as previous.
  redis.call('HSET', conv_key(id), 'state', 'new', 'assignee', '', 'previous_agent', agent)
  redis.call('ZREM', key('assigned', agent), id)
  release_holder(id)  -- issue 11 routing
  touch(id, 'new', '')
  to_agents(id, 'left', 0, agent, '', A[3])
  return reply({event = 'left', id = id})

elseif op == 'auto_close' then
  local token = A[2]
  if redis.call('EXISTS', conv_key(id)) == 0 then return refused('unknown') end
  if field(id, 'state') ~= 'resolved' or field(id, 'close_token') ~= token then
    return refused('stale')
  end
  return close(id)

elseif op == 'reply' then
  local agent, text, platform_id, seen_ttl = A[2], A[3], A[4], tonumber(A[5])
  local refusal = check_assignee(id, agent)
  if refusal then return refusal end
  if field(id, 'state') == 'resolved' then return refused('resolved') end
  if redis.call('EXISTS', key('optout', field(id, 'channel'), field(id, 'customer_id'))) == 1 then
    return refused('opted_out')
  end
  -- A channel's reply window (A[7] seconds, '' for none): outside it, the configured template goes
  -- instead (A[8] '1'), or the reply is refused at once.
  local window, template = tonumber(A[7] or ''), false
  if window then
    local last = tonumber(field(id, 'last_customer_at')) or tonumber(field(id, 'first_customer_at')) or 0
    if now - last > window then
      if A[8] ~= '1' then return refused('outside_window') end
      template = true
    end
  end
  if seen_before('agent', platform_id, seen_ttl) then return reply({event = 'duplicate', id = id}) end
  local files = A[9] or '[]'
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
  to_agents(id, first and 'first_response' or 'replied', seq, agent, '', A[6])
  return reply({event = 'replied', id = id, seq = seq, first = first})

elseif op == 'sound' then
  -- B Speaker: the assignee's per-chat sound (a mention on each customer message). Missing means on.
  local agent, wanted = A[2], A[3]
  local refusal = check_assignee(id, agent)
  if refusal then return refusal end
  if field(id, 'state') ~= 'active' then return refused('not_active') end
  local current = redis.call('HGET', key('sound', id), agent) or '1'
  if current == wanted then return refused(wanted == '1' and 'sound_already_on' or 'sound_already_off') end
  redis.call('HSET', key('sound', id), agent, wanted)
  to_agents(id, 'sound', 0, agent, '', A[4])
  return reply({event = 'sound', id = id, on = wanted == '1'})

elseif op == 'note' then
  -- A private note of the assignee: kept in the history, never sent, not a reply.
  local agent, text, platform_id, seen_ttl = A[2], A[3], A[4], tonumber(A[5])
  local refusal = check_assignee(id, agent)
  if refusal then return refusal end
  if seen_before('agent', platform_id, seen_ttl) then return reply({event = 'duplicate', id = id}) end
  local seq = append(id, 'note', text, agent)
  to_agents(id, 'noted', seq, agent, '', A[6])
  return reply({event = 'noted', id = id, seq = seq})

elseif op == 'reassign' then
  -- An admin moves an accepted chat to another agent, between the Assigned lists at once.
  local admin, target = A[2], A[3]
  if redis.call('EXISTS', conv_key(id)) == 0 then return refused('unknown') end
  local state = field(id, 'state')
  if state == 'closed' then return refused('closed') end
  if state == 'new' then return refused('reassign_new') end
  local assignee = field(id, 'assignee')
  if assignee == target then return refused('already_assigned', target) end
  if state == 'active' then  -- issue 11 routing: A[5] the target's capacity
    local full = over_capacity(target, A[5])
    if full then return full end
  end
  take_holder(id, target)
  redis.call('HSET', conv_key(id), 'assignee', target, 'last_agent', target)
  redis.call('ZREM', key('assigned', assignee), id)
  touch(id, state, target)
  to_agents(id, 'reassigned', 0, admin, target, A[4])
  return reply({event = 'reassigned', id = id, previous = assignee})

elseif op == 'offer' then
  -- The returning customer's head start is over: the chat is offered to everyone.
  if redis.call('EXISTS', conv_key(id)) == 0 then return refused('unknown') end
  if field(id, 'state') ~= 'new' or field(id, 'offered_at') ~= '' then return refused('stale') end
  redis.call('HSET', conv_key(id), 'offered_at', now, 'head_start_for', '')
  to_agents(id, 'offered', 0)
  return reply({event = 'offered', id = id})

elseif op == 'delivery' then
  -- Record what happened to an outbound message: sent (with the platform's id) or failed.
  local seq, status, detail = tonumber(A[2]), A[3], A[4]
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

if op == 'redeliver' then
  -- The assignee's Retry on a message that finally failed: queue it again, in order
  -- behind whatever is already waiting for the customer.
  local agent, seq = A[2], tonumber(A[3])
  local refusal = check_assignee(id, agent)
  if refusal then return refusal end
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
  to_agents(id, 'redelivering', seq, agent, '', A[4])
  return reply({event = 'redelivering', id = id})
end

if op == 'opt_out' then
  -- The customer opted out of (A[3] '1') or back into ('0') messages on a channel;
  -- while out, agents' replies are refused. Replies whether they were out before.
  local channel, customer, out = A[1], A[2], A[3]
  local flag = key('optout', channel, customer)
  local was = tostring(redis.call('EXISTS', flag))
  if out == '1' then redis.call('SET', flag, now) else redis.call('DEL', flag) end
  return reply({event = 'ok', was_out = was == '1'})
end

-- --- desk (issue 11): away message, queue position, who held a chat ---------------------------

-- The waiting chats in queue order (first come, first served: by creation, then id), each with
-- its 1-based position. ``inbox:queue`` is ordered by creation; equal times are put in id order
-- (the set orders them by name, "10" before "9").
local function queue_order()
  if not inbox_indexed() then return {} end  -- an upgrade's first seconds: nobody told
  local flat = redis.call('ZRANGE', key('inbox', 'queue'), 0, -1, 'WITHSCORES')
  local entries, i = {}, 1
  while i <= #flat do
    local j = i
    while flat[j + 3] == flat[i + 1] do j = j + 2 end
    local run = {}
    for k = i, j, 2 do table.insert(run, flat[k]) end
    if #run > 1 then table.sort(run, function(a, b) return tonumber(a) < tonumber(b) end) end
    for _, qid in ipairs(run) do table.insert(entries, {id = qid}) end
    i = j + 2
  end
  return entries
end

-- One waiting chat's place in the queue (0: not waiting): a count, not a walk.
local function queue_position(qid)
  if not inbox_indexed() then return 0 end  -- an upgrade's first seconds: not told
  local queue = key('inbox', 'queue')
  local created = redis.call('ZSCORE', queue, qid)
  if not created then return 0 end
  local position = redis.call('ZCOUNT', queue, '-inf', '(' .. created) + 1
  for _, other in ipairs(redis.call('ZRANGEBYSCORE', queue, created, created)) do
    if tonumber(other) < tonumber(qid) then position = position + 1 end
  end
  return position
end

local function tell_position(qid, position, template)
  local text = string.gsub(template, '{position}', tostring(position))
  redis.call('HSET', conv_key(qid), 'queue_told', position)
  to_customer(qid, text, append(qid, 'out', text, 'system'))
end

if op == 'welcome' then
  -- A new chat's automatic messages: the away message (outside business hours) and the
  -- customer's place in the queue. Runs once per conversation (``welcomed``).
  local wid, away, template = A[1], A[2], A[3]
  if redis.call('EXISTS', conv_key(wid)) == 0 then return refused('unknown') end
  if redis.call('HSETNX', conv_key(wid), 'welcomed', now) == 0 then return refused('stale') end
  if away ~= '' then to_customer(wid, away, append(wid, 'out', away, 'system')) end
  local position = 0
  if template ~= '' and field(wid, 'state') == 'new' then
    position = queue_position(wid)
    if position > 0 then tell_position(wid, position, template) end
  end
  return reply({event = 'welcomed', id = wid, position = position})
end

if op == 'queue_positions' then
  -- After chats left the Inbox: each waiting customer who was told a place and has moved up
  -- by at least ``step`` since hears their new place (once per step; never after Accept).
  local step, template = tonumber(A[1]), A[2]
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

if op == 'rebuild_indexes' then
  -- One step of building the Inbox's indexes (index_step): A[1] '1' to start over, A[2] chats per step.
  local done, indexed = index_step(tonumber(A[2]) or 1000, A[1] == '1')
  return reply({event = 'indexes', done = done, indexed = indexed})
end
-- --- end desk ---
-- --- issue 11 routing: transfer, offer to everyone after the topic team's wait, SLA escalation ---
if op == 'transfer' then
  -- The assignee hands an active chat to another agent, with a note (kept in the history).
  local agent, target, note, capacity = A[2], A[3], A[4], A[5]
  local refusal = check_assignee(id, agent)
  if refusal then return refusal end
  if field(id, 'state') ~= 'active' then return refused('not_active') end
  if target == agent then return refused('transfer_self') end
  local full = over_capacity(target, capacity)
  if full then return full end
  local seq = 0
  if note ~= '' then seq = append(id, 'note', note, agent) end
  take_holder(id, target)
  redis.call('HSET', conv_key(id), 'assignee', target, 'last_agent', target, 'previous_agent', agent)
  redis.call('ZREM', key('assigned', agent), id)
  touch(id, 'active', target)
  to_agents(id, 'transferred', seq, agent, target, A[6])
  return reply({event = 'transferred', id = id, seq = seq})
end

if op == 'open_to_all' then
  -- Nobody on the topic's team accepted in time (or the team has no one): everyone may take it.
  if redis.call('EXISTS', conv_key(id)) == 0 then return refused('unknown') end
  if field(id, 'state') ~= 'new' or field(id, 'team_only') ~= '1' then return refused('stale') end
  local score = redis.call('ZSCORE', key('inbox'), id)
  if score then redis.call('ZREM', (inbox_leaf(id)), id) end  -- from the team's leaf...
  redis.call('HSET', conv_key(id), 'team_only', '', 'opened_to_all_at', now)
  if score then enter_leaf(id, score) end  -- ...to the open one, same place in the Inbox
  to_agents(id, 'opened_to_all', 0)
  return reply({event = 'opened_to_all', id = id})
end

if op == 'escalate' then
  -- First-response SLA: a chat never accepted, still waiting. Counted per chat and in total.
  if redis.call('EXISTS', conv_key(id)) == 0 then return refused('unknown') end
  if field(id, 'state') ~= 'new' or field(id, 'accepted_at') ~= '' then return refused('stale') end
  local count = redis.call('HINCRBY', conv_key(id), 'escalations', 1)
  redis.call('HSET', conv_key(id), 'escalated_at', now)
  redis.call('INCR', key('escalations_total'))
  to_agents(id, 'escalated', 0)
  -- The next check, A[3] seconds from now (0: none).
  if (tonumber(A[3]) or 0) > 0 then set_timer('escalate', id, tostring(count + 1), now + tonumber(A[3])) end
  return reply({event = 'escalated', id = id, count = count})
end
-- --- end issue 11 routing ---

return redis.error_reply('unknown operation ' .. tostring(op))
