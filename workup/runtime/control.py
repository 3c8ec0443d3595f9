"""Controller messages: what ``workup control`` broadcasts and what every instance answers.

A message is a compact JWS (HS256) whose payload is a :class:`ControlMessage`; it names its
target service, an issued-at, an expiry (a short validity window) and a random nonce, so a message
is refused when unsigned, badly signed, stale, meant for another service, or replayed.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Literal

import msgspec
from jwcrypto import jwk, jws
from jwcrypto.common import JWException, base64url_encode, json_encode

__all__ = [
    "COMMANDS", "ControlMessage", "ControlReply", "InstanceStatus", "ControlRefused",
    "control_key", "sign", "Verifier", "MAX_WINDOW", "MAX_SOURCE",
]

# command -> number of positional args
COMMANDS: dict[str, int] = {
    "set-max-threads": 1, "set-max-db-connections": 1, "freeze": 0, "start": 0,
    "delete-command": 1, "add-command": 1, "update-command": 1, "set-logging-level": 1,
    "set-processes": 1, "status": 0,
}
MAX_WINDOW = 120.0      # seconds a signed message may live at most
CLOCK_SKEW = 5.0        # tolerated clock difference between controller and instances
MAX_SOURCE = 256 * 1024  # bytes of module source in update-command


class ControlMessage(msgspec.Struct, frozen=True, kw_only=True):
    service: str
    command: str
    args: list[str] = []
    source: str | None = None     # update-command: the new module's Python source
    iat: float
    exp: float
    nonce: str


class InstanceStatus(msgspec.Struct, kw_only=True):
    service: str
    host: str
    pid: int
    role: Literal["process", "supervisor"] = "process"
    supervisor: int | None = None     # the supervising process's pid, if any
    processes: int | None = None      # supervisor: target number of child processes
    children: list[int] = []
    max_threads: int = 0
    prefetch: int = 0
    db_pool_size: int | None = None
    frozen: bool = False
    enabled: list[str] = []
    versions: dict[str, str] = {}
    log_level: str = ""
    handled: int = 0
    in_flight: int = 0
    uptime: float = 0.0


class ControlReply(msgspec.Struct, kw_only=True, omit_defaults=True):
    ok: bool
    pid: int
    host: str
    detail: str = ""
    status: InstanceStatus | None = None


class ControlRefused(Exception):
    """A control message that must not be applied; ``str()`` says why (logged, never applied)."""


def control_key(secret: str) -> jwk.JWK:
    """An HS256 key from any secret string (HS256 wants 256 bits; hashing gives exactly that)."""
    return jwk.JWK(kty="oct", k=base64url_encode(hashlib.sha256(secret.encode()).digest()))


_encode = msgspec.json.Encoder().encode
_decode_message = msgspec.json.Decoder(ControlMessage).decode


def sign(key: jwk.JWK, service: str, command: str, args: list[str] | tuple[str, ...] = (), *,
         source: str | None = None, validity: float = 30.0, now: float | None = None) -> bytes:
    issued = time.time() if now is None else now
    msg = ControlMessage(service=service, command=command, args=list(args), source=source,
                         iat=issued, exp=issued + validity, nonce=secrets.token_hex(16))
    token = jws.JWS(_encode(msg))
    token.add_signature(key, None, json_encode({"alg": "HS256"}))
    return token.serialize(compact=True).encode()


class Verifier:
    """Checks signature, service, freshness and nonce; remembers nonces until they expire."""

    def __init__(self, key: jwk.JWK, service: str) -> None:
        self._key = key
        self._service = service
        self._seen: dict[str, float] = {}

    def verify(self, payload: bytes, now: float | None = None) -> ControlMessage:
        now = time.time() if now is None else now
        token = jws.JWS()
        token.allowed_algs = ["HS256"]
        try:
            token.deserialize(payload.decode("ascii"))
            token.verify(self._key, alg="HS256")
        except (UnicodeDecodeError, JWException, ValueError) as exc:
            raise ControlRefused(f"bad signature or not a JWS ({type(exc).__name__})") from None
        try:
            msg = _decode_message(token.payload)
        except msgspec.MsgspecError as exc:
            raise ControlRefused(f"malformed control message: {exc}") from None
        if msg.service != self._service:
            raise ControlRefused(f"message is for service {msg.service!r}")
        if msg.exp - msg.iat > MAX_WINDOW or msg.exp < msg.iat:
            raise ControlRefused("validity window too long")
        if msg.iat > now + CLOCK_SKEW:
            raise ControlRefused("issued in the future")
        if msg.exp < now:
            raise ControlRefused("expired")
        for nonce, exp in list(self._seen.items()):
            if exp < now:
                del self._seen[nonce]
        if msg.nonce in self._seen:
            raise ControlRefused("replayed (nonce already seen)")
        self._seen[msg.nonce] = msg.exp
        return msg
