"""Customer platforms. Each module is one channel (``gateway.ports.Channel``): it turns its
platform's webhooks into ``gateway.message.InboundMessage`` and sends ``OutboundMessage``;
no other package knows a platform's wire format. ``registry.py`` lists them."""
