"""Password hashing: salted scrypt (memory-hard), self-describing hashes, constant-time checks.

These are plain blocking functions; the service runs them in a worker thread (``hashlib.scrypt``
releases the GIL) through a small limiter, because they are the CPU-heavy part of the service.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

__all__ = ["hash_password", "verify_password", "DUMMY_HASH", "SCRYPT_N", "SCRYPT_R", "SCRYPT_P"]

# n=2**15, r=8 -> 32 MiB per hash, ~130 ms on these machines' cores (OWASP's scrypt minimum is
# n=2**17 at p=1 or equivalent; this keeps a login well under a second on shared CI machines). Hashes
# name their own parameters, so raising these later leaves existing hashes verifiable.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_DKLEN = 32
_MAXMEM = 160 * 1024 * 1024   # room for n up to 2**17 (128 MiB) in stored hashes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p,
                          dklen=_DKLEN, maxmem=_MAXMEM)


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64, unpadded)."""
    salt = os.urandom(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Recompute with the stored parameters and compare in constant time. A malformed stored hash
    never verifies."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# Verified against for unknown emails, so "no such user" costs the same time as "wrong password".
DUMMY_HASH = hash_password(os.urandom(16).hex())
