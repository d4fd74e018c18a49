-- An outbox whose platform asked it to wait (pacing) goes back on the ready list (still marked).
OPS.requeue = function(A)
  redis.call('RPUSH', key('ready'), A.outbox)
  if redis.call('SET', key('drainer'), '1', 'NX', 'EX', 60) then
    rq_enqueue('workers.jobs.drain_ready', {'ready'}, JOBS.queue, false)
  end
  return reply({event = 'requeued'})
end

TIMERS.ready = function(outbox) return run_op('requeue', {outbox = outbox}) end
