-- B Speaker: the assignee's per-chat sound (a mention on each customer message); ``on`` '1' or '0'.
-- Missing means on.
OPS.sound = function(A, chat)
  local id, agent, wanted = chat.id, A.agent, A.on
  local current = redis.call('HGET', key('sound', id), agent) or '1'
  if current == wanted then return refused(wanted == '1' and 'sound_already_on' or 'sound_already_off') end
  redis.call('HSET', key('sound', id), agent, wanted)
  to_agents(id, 'sound', 0, agent, '', A.via)
  return reply({event = 'sound', id = id, on = wanted == '1'})
end
