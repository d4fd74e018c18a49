"""The ``[web]`` section: the agents' web console."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["WebConfig", "load_web_config"]


@dataclass(frozen=True)
class WebConfig:
    enabled: bool = True
    # Signs the session cookies. Empty: one is generated on first start and kept
    # in Redis, so every web process signs alike and restarts keep agents signed in.
    session_secret: str = ""
    # A sign-in lasts this long (seconds; "12h" works too).
    session_max_age: float = 12 * 3600.0
    # Failed sign-ins of one user name from one client in any 60 s (a sliding window) before that pair
    # gets 429; one client may fail 4 × this across names; other clients only get a backoff (login.py).
    login_attempts: int = 10
    # Send the cookie over HTTPS only. Also on whenever server.public_url is https.
    cookie_secure: bool = False


KNOWN = {"enabled", "session_secret", "session_max_age", "login_attempts", "cookie_secure"}


def load_web_config(reader: Any) -> WebConfig:
    """Read and check ``[web]``; problems go to ``reader.problem``."""
    enabled = reader.boolean("enabled", WebConfig.enabled)
    reader.env_required = enabled
    config = WebConfig(
        enabled=enabled,
        session_secret=reader.string("session_secret", WebConfig.session_secret),
        session_max_age=reader.duration("session_max_age", WebConfig.session_max_age),
        login_attempts=reader.integer("login_attempts", WebConfig.login_attempts, minimum=1),
        cookie_secure=reader.boolean("cookie_secure", WebConfig.cookie_secure),
    )
    if config.session_secret and len(config.session_secret) < 32:
        # Never echo the secret back.
        reader.problem("session_secret", "at least 32 random characters (or leave it out: chatgate then "
                       "generates one and keeps it in Redis)")
    if config.session_max_age <= 0:
        reader.problem("session_max_age", "a duration above zero, like \"12h\"", config.session_max_age)
    reader.unknown_keys(KNOWN)
    return config
