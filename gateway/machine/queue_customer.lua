-- A message outside any conversation (the greeting): channel, customer, the outbound item.
OPS.queue_customer = function(A)
  push_out(key('out', 'customer', A.channel, A.customer), A.item)
  return reply({event = 'queued'})
end
