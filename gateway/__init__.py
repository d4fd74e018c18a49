"""chatgate's core: config, the conversation state machine, the Redis store, the web app and the CLI."""
