-- Close a resolved chat, unless it was reopened since ``token`` was issued.
OPS.auto_close = function(A)
  local id = A.conversation
  if redis.call('EXISTS', conv_key(id)) == 0 then return refused('unknown') end
  if field(id, 'state') ~= 'resolved' or field(id, 'close_token') ~= A.token then
    return refused('stale')
  end
  return close(id)
end

TIMERS.auto_close = function(id, token) return run_op('auto_close', {conversation = id, token = token}) end
