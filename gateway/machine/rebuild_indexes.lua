-- One step of building the Inbox's indexes (index_step): ``restart`` '1' to start over, ``count``
-- chats per step.
OPS.rebuild_indexes = function(A)
  local done, indexed = index_step(tonumber(A.count) or 1000, A.restart == '1')
  return reply({event = 'indexes', done = done, indexed = indexed})
end
