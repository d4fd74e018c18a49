"""The agent side: the Slack app. It calls the core operations and holds no state of its own."""
