"""Customer platforms. Each module turns its platform's webhooks into
``gateway.message.InboundMessage`` and sends ``OutboundMessage``; no other
package knows a platform's wire format."""

from __future__ import annotations


class DeliveryError(Exception):
    """Sending failed. ``permanent`` errors are not retried; ``retry_after`` is the platform's wish;
    ``opted_out`` says the platform knows the customer unsubscribed (chatgate should remember it)."""

    def __init__(self, message: str, permanent: bool = False, retry_after: float | None = None,
                 opted_out: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.opted_out = opted_out
