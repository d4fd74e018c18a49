"""Slack: chat cards with buttons in a channel, one thread per conversation."""
