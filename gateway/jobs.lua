-- RQ jobs and timers, written in the same atomic call as the change that needs them
-- (see gateway/jobs.py). First part of the machine script (gateway/operations.py machine_source):
-- ARGV[4] is the time as RQ writes it (ISO, UTC), ARGV[5] the job settings (JobSettings.encoded()).
-- The jobs are RQ's own keys (``rq:*``), beside chatgate's (``{prefix}:*``): one call writes both, so
-- the machine needs one Redis node (a primary, with replicas or not), not a Redis Cluster.

local JOBS = cjson.decode(ARGV[5])
local NOW_ISO = ARGV[4]

-- One job in rq 3.0's hash format, JSON-serialized and uncompressed (RQ reads both).
local function rq_job(func, args, queue, status, retry)
  local id = 'chatgate-' .. redis.call('INCR', KEYS[1] .. ':job_seq')
  local fields = {
    'data', cjson.encode({func, cjson.null, args, cjson.decode('{}')}),
    'created_at', NOW_ISO, 'origin', queue, 'status', status, 'timeout', JOBS.timeout,
    'result_ttl', 0, 'failure_ttl', 7 * 24 * 3600, 'description', func .. '(' .. table.concat(args, ', ') .. ')',
  }
  if retry then
    table.insert(fields, 'retries_left'); table.insert(fields, JOBS.retries)
    table.insert(fields, 'retry_intervals'); table.insert(fields, JOBS.intervals)
  end
  if status == 'queued' then table.insert(fields, 'enqueued_at'); table.insert(fields, NOW_ISO) end
  redis.call('HSET', 'rq:job:' .. id, unpack(fields))
  return id
end

local function rq_enqueue(func, args, queue, retry)
  local id = rq_job(func, args, queue, 'queued', retry)
  redis.call('SADD', 'rq:queues', 'rq:queue:' .. queue)
  redis.call('RPUSH', 'rq:queue:' .. queue, id)
end

-- An outbox with new items is marked pending once (the drainer that empties it clears the mark)
-- and joins the ready list; a drainer job is queued unless one is queued and not started yet.
local function wake_drain(outbox)
  if redis.call('SET', outbox .. ':job', '1', 'NX') then
    redis.call('RPUSH', KEYS[1] .. ':ready', outbox)
    if redis.call('SET', KEYS[1] .. ':drainer', '1', 'NX', 'EX', 60) then
      rq_enqueue('workers.jobs.drain_ready', {'ready'}, JOBS.queue, false)
    end
  end
end

-- A timer ``kind|subject|arg`` due at ``due`` (seconds); the earliest due wins for a repeated one.
local function set_timer(kind, subject, arg, due)
  redis.call('ZADD', KEYS[1] .. ':timers', 'LT', due, kind .. '|' .. subject .. '|' .. arg)
  local now_s = tonumber(ARGV[2])
  if due <= now_s then
    -- Already due: one immediate firing, however many timers come due meanwhile.
    if redis.call('SET', KEYS[1] .. ':timers:now', '1', 'NX', 'EX', 300) then
      rq_enqueue('workers.jobs.fire_timers', {'now'}, JOBS.timers, false)
    end
    return
  end
  -- One scheduled wake-up per due second, shared by all timers due in that second.
  local second = math.ceil(due)
  if redis.call('SET', KEYS[1] .. ':timers:wake:' .. second, '1', 'NX', 'EX', math.ceil(second - now_s) + 3600) then
    local id = rq_job('workers.jobs.fire_timers', {tostring(second)}, JOBS.timers, 'scheduled', false)
    redis.call('SADD', 'rq:queues', 'rq:queue:' .. JOBS.timers)
    redis.call('ZADD', 'rq:scheduled:' .. JOBS.timers, second, id)
  end
end

local function clear_timer(kind, subject, arg)
  redis.call('ZREM', KEYS[1] .. ':timers', kind .. '|' .. subject .. '|' .. arg)
end
