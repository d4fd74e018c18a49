-- Runs the operation ARGV[1] from its declaration (DECLARED, gateway/operations.py): for an operation
-- on one chat, the common checks first (the chat exists and is not closed; for the assignee's
-- controls, it was accepted and by this agent; a state outside the declared ones gets its declared
-- refusal, or the operation's own), then the operation itself.

local function chat_checks(declared, A)
  local id = A.conversation
  local found = redis.call('HMGET', conv_key(id), 'state', 'assignee')
  local state, assignee = found[1], found[2] or ''
  if not state then return refused('unknown') end
  local in_states = listed(declared.states, state)
  if state == 'closed' and not in_states then return refused('closed') end
  if declared.who == 'assignee' then
    if state == 'new' then return refused('not_accepted') end
    if assignee ~= A.agent then return refused('not_assignee', assignee) end
  end
  if not in_states and declared.wrong_state[state] then return refused(declared.wrong_state[state], assignee) end
  return nil, {id = id, state = state, assignee = assignee}, in_states
end

run_op = function(name, A)
  local declared, operation = DECLARED(name), OPS[name]
  if not declared or not operation then return redis.error_reply('unknown operation ' .. tostring(name)) end
  local outer, outer_name, outer_refused = CURRENT, CURRENT_NAME, REFUSED
  CURRENT, CURRENT_NAME, REFUSED = declared, name, false
  local result
  if declared.states == ',,' then
    result = operation(A)
  else
    local refusal, chat, in_states = chat_checks(declared, A)
    if refusal then
      result = refusal
    else
      result = operation(A, chat)
      -- Outside its declared states an operation may only refuse.
      if not in_states and not REFUSED then
        error('operation ' .. name .. ' ran in state ' .. chat.state .. ', which it does not declare')
      end
    end
  end
  CURRENT, CURRENT_NAME, REFUSED = outer, outer_name, outer_refused
  return result
end

-- ``may``: the common checks of ``operation`` alone, changing nothing (before a console opens a form).
local function may(A)
  local declared = DECLARED(A.operation)
  if not declared or declared.states == ',,' then return redis.error_reply('no checks for ' .. tostring(A.operation)) end
  local outer, outer_name = CURRENT, CURRENT_NAME
  CURRENT, CURRENT_NAME = declared, A.operation
  local refusal = chat_checks(declared, A)
  CURRENT, CURRENT_NAME = outer, outer_name
  return refusal or reply({event = 'may'})
end

local A = cjson.decode(ARGV[6])
if ARGV[1] == 'may' then return may(A) end
return run_op(ARGV[1], A)
