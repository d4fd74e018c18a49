-- A private note of the assignee: kept in the history, never sent, not a reply; once per ``platform_id``.
OPS.note = function(A, chat)
  local id, agent = chat.id, A.agent
  if seen_before('agent', A.platform_id, tonumber(A.seen_ttl)) then return reply({event = 'duplicate', id = id}) end
  local seq = append(id, 'note', A.text, agent)
  to_agents(id, 'noted', seq, agent, '', A.via)
  return reply({event = 'noted', id = id, seq = seq})
end
