"""Password hashes for web sign-in: scrypt from the standard library.

A hash reads ``scrypt$n$r$p$salt_b64$hash_b64``; ``hash_password`` makes one
(for the ``[[agents]]`` entry's ``password_hash``), ``verify_password`` checks a
password against one in constant time and never raises on a malformed hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["hash_password", "verify_password", "DUMMY_HASH"]

# 2**14 x 8 x 1: about 16 MiB and 50 ms per check, OWASP's scrypt minimum.
N, R, P = 2**14, 8, 1
_KEY_BYTES = 32
_MAX_N = 2**20


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=length,
                          maxmem=128 * r * (n + p + 2) + 1024 * 1024)


def hash_password(password: str, n: int = N, r: int = R, p: int = P) -> str:
    """A new hash of ``password`` with a random salt."""
    if not password:
        raise ValueError("the password is empty")
    salt = secrets.token_bytes(16)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(_scrypt(password, salt, n, r, p, _KEY_BYTES))}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; False for an empty or malformed hash."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        n_, r_, p_ = int(n), int(r), int(p)
        if scheme != "scrypt" or not (1 < n_ <= _MAX_N and n_ & (n_ - 1) == 0 and 0 < r_ <= 32 and 0 < p_ <= 16):
            return False
        salt_bytes, expected_bytes = _unb64(salt), _unb64(expected)
        if not 8 <= len(expected_bytes) <= 64:
            return False
        got = _scrypt(password, salt_bytes, n_, r_, p_, len(expected_bytes))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected_bytes)


# Checked against when the user name is unknown, so the answer takes as long as for a known one.
DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + _b64(bytes(_KEY_BYTES))
