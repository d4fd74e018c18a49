"""RQ jobs that deliver messages and notifications and close resolved chats, and the worker."""
