"""Which hosts may receive a platform's credentials: each channel's and console's allowlist.

A file download named by a webhook (Twilio's ``MediaUrl``, a Slack file's ``url_private``) goes out
with the account's credentials only to a host of the platform's own: an https URL whose host matches
one of the allowlist's patterns (``"files.slack.com"``, ``"*.twilio.com"``: that domain's subdomains;
``"host:port"`` pins a port), or the origin (scheme, host and port) of the configured ``api_url``,
which is how the tests' local fakes are reached. Anything else is refused before a request is made
(``DeliveryError``, permanent), so no credential leaves for a host the platform does not run.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .config import ConfigReader
from .ports import DeliveryError

__all__ = ["host_allowed", "check_host", "hosts_setting"]

_PATTERN = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$")


def _origin(url: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def host_allowed(url: str, patterns: tuple[str, ...], api_url: str = "") -> bool:
    """Whether credentials may go to ``url``: the api_url's own origin, or https to an allowed host."""
    origin = _origin(url)
    if origin is None:
        return False
    if api_url and origin == _origin(api_url):
        return True
    scheme, host, port = origin
    if scheme != "https" or urlsplit(url).username is not None:
        return False
    for pattern in patterns:
        name, _, pinned = pattern.lower().partition(":")
        if pinned and int(pinned) != port:
            continue
        if name.startswith("*."):
            if host.endswith(name[1:]) and host != name[2:]:
                return True
        elif host == name:
            return True
    return False


def check_host(url: str, patterns: tuple[str, ...], api_url: str, what: str, setting: str) -> None:
    """Raise a permanent DeliveryError unless ``url`` may get the credentials (see ``host_allowed``)."""
    if not host_allowed(url, patterns, api_url):
        host = urlsplit(url).hostname if _origin(url) else None
        raise DeliveryError(f"{what} is on {host or 'no valid https URL'!s}, not a host of the platform's "
                            f"(allowed: {', '.join(patterns) or 'none'} and the api_url's); not fetched, no "
                            f"credentials sent (the allowlist is {setting})", permanent=True)


def hosts_setting(reader: ConfigReader, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A list of host patterns (``"files.slack.com"``, ``"*.twilio.com"``, ``"host:8443"``); default when absent."""
    if reader.data.get(name) is None:
        reader.seen.add(name)
        return default
    hosts = reader.strings(name)
    bad = [host for host in hosts if not _PATTERN.match(host.lower())]
    if bad:
        reader.problem(name, 'a list of host names like "files.slack.com" or "*.twilio.com" (no scheme or path)',
                       bad[0])
        return default
    return hosts
