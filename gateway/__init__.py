"""chatgate's core: config, the conversation operations and their state machine in Redis, the store,
routing, business hours, saved replies, reports, retention, the ports that channels and consoles
implement, and the web app that serves them."""
