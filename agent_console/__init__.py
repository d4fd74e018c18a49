"""The agent side: the Slack console and the web console. Both call the core operations and hold
no conversation state of their own."""
