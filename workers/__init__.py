"""RQ jobs that deliver messages to customers and events to the consoles and fire due timers
(auto-close, head starts, SLA escalations, queue positions), and the worker."""
