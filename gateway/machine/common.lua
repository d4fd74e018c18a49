-- The conversation state machine's common part: keys, indexes, outboxes, refusals (docs/conversations.md).
--
-- Assembled at load time (gateway/operations.py ``machine_source``): jobs.lua, the declarations
-- (DECLARED), this file, the file of the operation called (each adds ``OPS.<name>``), then dispatch.lua.
--
-- KEYS[1] is the key prefix, e.g. "{chatgate}"; every key of chatgate's starts with it (RQ's do not:
-- see jobs.lua).
-- ARGV[1] is the operation, ARGV[2] the time (seconds, float), ARGV[3] the enabled consoles
-- (comma-separated: each gets its own outbox per conversation), ARGV[4] and ARGV[5] what jobs.lua
-- needs to write RQ jobs, ARGV[6] the operation's arguments, a JSON object read by name.
-- Replies are JSON objects read by name: {"event": ..., ...} or {"refused": code, "detail": ...}.

local P = KEYS[1]
local now = tonumber(ARGV[2])
local consoles = {}
for name in string.gmatch(ARGV[3], '[^,]+') do table.insert(consoles, name) end
-- Each operation's file adds its function: OPS.<name>(A, chat), A its named arguments, chat (for an
-- operation on one chat) {id, state, assignee}. TIMERS.<kind>(subject, arg, extra) runs a due timer.
local OPS, TIMERS = {}, {}
-- The declaration of the operation running now (DECLARED(name)) and its name.
local CURRENT, CURRENT_NAME = nil, ''
local REFUSED = false
-- Runs one operation by name (dispatch.lua): timers run theirs through it.
local run_op

local function listed(set, name) return string.find(set, ',' .. name .. ',', 1, true) ~= nil end

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
  if not listed(CURRENT.events, event) then
    error('operation ' .. CURRENT_NAME .. ' emits ' .. event .. ', which it does not declare')
  end
  -- Short names, empty fields left out: an item per console per event (gateway/events.py reads them).
  local fields = {c = id, e = event, t = now}
  if event == 'changed' then fields.p = CURRENT_NAME end
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

-- A refusal; only with a code the running operation declares.
local function refused(code, detail)
  if not listed(CURRENT.refusals, code) then
    error('operation ' .. CURRENT_NAME .. ' refuses with ' .. code .. ', which it does not declare')
  end
  REFUSED = true
  return reply({refused = code, detail = detail or ''})
end

-- Who held the chat when, and how many active chats an agent holds.
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
  release_holder(id)
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
