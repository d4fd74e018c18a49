"""Customer platforms. ``telegram.py``, ``twilio.py`` (SMS and WhatsApp) and ``webchat.py`` (the
web chat) are one channel each (``gateway.ports.Channel``): each turns its platform's webhooks
or requests into ``gateway.message.InboundMessage`` and sends ``OutboundMessage``; ``render.py``
renders chatgate text for each platform. No other package knows a platform's wire format.
``CHANNELS`` in ``chatgate/compose.py`` lists them."""
