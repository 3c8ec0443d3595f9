"""Who sent a request, proven rather than believed: the signed caller assertion.

A broker credential lets anyone publish any message, so the ``caller``/``role`` headers alone
prove nothing. Every request therefore carries an *assertion*: a compact JWS (``alg: EdDSA``,
Ed25519) over the caller, its role, the command, the request id, the deadline and a SHA-256 of
the body. Two key pairs sign them:

- the **gateway key** speaks for end users (and anonymous callers: register, login); only the
  gateway holds its private half, services hold the public half;
- the **service key** (one per deployment) speaks for ``SERVICE``: the runtime's ``call`` and the
  outbox relays; every service holds it, the gateway does not.

The role picks the key, so the gateway key cannot mint ``SERVICE`` and the service key cannot
speak for a user. The transports sign in ``call`` (:meth:`Identity.sign`); the runtime checks
every request before any handler runs (:meth:`Identity.check`, ``runtime/instance.py``) and
answers a refusal with 403. Keys are 32-byte Ed25519 seeds and public keys, base64url-encoded
(:func:`load_identity` reads them from settings, files, or the data directory).

Speed: every request is signed once and verified once, so the Ed25519 calls go to libsodium
(PyNaCl's bindings) on raw keys derived once per :class:`Identity`. Through ``cryptography``
(OpenSSL 3) a verify cost about twice as much CPU (≈110 µs against ≈50 µs here, a sign 31
against 22), mostly per-call context set-up. The signatures are the same Ed25519 (RFC 8032)
bytes either way; libsodium's verify is the stricter one (it refuses non-canonical signatures
and small-order keys).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Literal

import msgspec
from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from ..settings import Settings, SettingsError, create_secret_file, read_secret
from .envelope import Caller

__all__ = ["Identity", "IdentityRefused", "Assertion", "load_identity", "default_identity",
           "new_key", "public_key_of", "IDENTITY_ENV", "identity_env"]


class IdentityRefused(Exception):
    """A request whose assertion is missing, forged, altered, expired or for another command;
    ``str()`` is the reason the 403 problem names."""


class Assertion(msgspec.Struct, frozen=True, omit_defaults=True):
    """The signed claims (short names: this travels with every request)."""

    cmd: str                 # the command it may run
    rid: str                 # the request id
    exp: float               # the request's deadline (unix time)
    bh: str                  # base64url SHA-256 of the msgpack body
    sub: str | None = None   # user id
    role: str | None = None


# one fixed header: an assertion with any other (another alg, a kid, a jku) is refused unread
_HEADER = base64.urlsafe_b64encode(b'{"alg":"EdDSA","typ":"workup-caller"}').rstrip(b"=")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Assertion).decode


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(text: str | bytes) -> bytes:
    if isinstance(text, str):
        text = text.encode()
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def _body_hash(body: bytes) -> str:
    return _b64(hashlib.sha256(body).digest()).decode()


_SIG = 64  # bytes of an Ed25519 signature


def _sodium_secret(key: Ed25519PrivateKey | None) -> bytes | None:
    """libsodium's 64-byte secret key (seed + public key) of ``key``."""
    if key is None:
        return None
    return crypto_sign_seed_keypair(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))[1]


def _raw_public(key: Ed25519PublicKey | None) -> bytes | None:
    return None if key is None else key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def new_key() -> str:
    """A new Ed25519 private key (its 32-byte seed, base64url)."""
    return _b64(os.urandom(32)).decode()


def _raw_key(text: str, name: str, what: str) -> bytes:
    try:
        raw = _unb64(text.strip())
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise SettingsError(f"{name}: not a base64url Ed25519 {what} (32 bytes)")
    return raw


def _private(text: str, name: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_raw_key(text, name, "key"))


def _public(text: str, name: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_raw_key(text, name, "public key"))


def _public_text(key: Ed25519PublicKey) -> str:
    return _b64(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def public_key_of(private: str) -> str:
    """The public key (base64url) of a private key given as :func:`new_key` makes them."""
    return _public_text(_private(private, "key").public_key())


class Identity:
    """The keys one process holds: what it may sign as, and what it trusts.

    ``gateway_key``/``service_key`` are private keys (``None``: this process cannot sign as end
    users / as ``SERVICE``); the public keys are needed to check requests (a gateway checks none).
    """

    __slots__ = ("gateway_key", "gateway_public", "service_key", "service_public",
                 "_signers", "_verifiers")

    def __init__(self, *, gateway_key: Ed25519PrivateKey | None = None,
                 gateway_public: Ed25519PublicKey | None = None,
                 service_key: Ed25519PrivateKey | None = None) -> None:
        self.gateway_key = gateway_key
        self.gateway_public = gateway_public or (gateway_key.public_key() if gateway_key else None)
        self.service_key = service_key
        self.service_public = service_key.public_key() if service_key else None
        # libsodium's raw keys, by "is the role SERVICE": a 64-byte secret key, a public key
        self._signers = {False: _sodium_secret(gateway_key), True: _sodium_secret(service_key)}
        self._verifiers = {False: _raw_public(self.gateway_public), True: _raw_public(self.service_public)}

    @classmethod
    def generate(cls) -> Identity:
        """Both private keys, new: one process that is the whole system (tests, ``workup up``)."""
        return cls(gateway_key=Ed25519PrivateKey.generate(), service_key=Ed25519PrivateKey.generate())

    def for_gateway(self) -> Identity:
        """What a gateway holds: the gateway key alone."""
        return Identity(gateway_key=self.gateway_key)

    def for_service(self) -> Identity:
        """What a service holds: the service key and the gateway's public key."""
        return Identity(gateway_public=self.gateway_public, service_key=self.service_key)

    def sign(self, command: str, caller: Caller, deadline: float, request_id: str, body: bytes) -> str:
        key = self._signers[caller.role == "SERVICE"]
        if key is None:
            who = "SERVICE" if caller.role == "SERVICE" else "an end user"
            raise IdentityRefused(f"this process holds no key to call as {who}")
        payload = _b64(_encode(Assertion(cmd=command, rid=request_id, exp=deadline, bh=_body_hash(body),
                                         sub=caller.user_id, role=caller.role)))
        signing_input = _HEADER + b"." + payload
        return (signing_input + b"." + _b64(crypto_sign(signing_input, key)[:_SIG])).decode()

    def check(self, assertion: str, command: str, caller: Caller, deadline: float,
              request_id: str, body: bytes, now: float) -> None:
        """Raise :class:`IdentityRefused` unless ``assertion`` was signed by the key of
        ``caller``'s role over exactly this command, caller, request id, deadline and body, and
        has not expired."""
        key = self._verifiers[caller.role == "SERVICE"]
        if key is None:
            raise IdentityRefused("this process trusts no key for that caller")
        if not assertion:
            raise IdentityRefused("no caller assertion")
        header, _, rest = assertion.encode().partition(b".")
        payload, _, signature = rest.partition(b".")
        if header != _HEADER or not payload or not signature:
            raise IdentityRefused("malformed caller assertion")
        try:
            raw = _unb64(signature)
            if len(raw) != _SIG:   # the combined form below would shift a short one into the message
                raise ValueError("signature length")
            crypto_sign_open(raw + header + b"." + payload, key)
            claims = _decode(_unb64(payload))
        except (BadSignatureError, binascii.Error, ValueError, msgspec.DecodeError):
            raise IdentityRefused("caller assertion not signed by a trusted key") from None
        if claims.cmd != command:
            raise IdentityRefused(f"caller assertion is for {claims.cmd}, not {command}")
        if (claims.sub, claims.role) != (caller.user_id, caller.role):
            raise IdentityRefused("caller differs from the caller assertion")
        if claims.rid != request_id or claims.exp != deadline:
            raise IdentityRefused("request id or deadline differs from the caller assertion")
        if claims.bh != _body_hash(body):
            raise IdentityRefused("body differs from the caller assertion")
        if not claims.exp > now:
            raise IdentityRefused("caller assertion expired")


# -- where the keys come from -------------------------------------------------------------------
# The environment variables of the three keys (Settings fields of the same names, lower case).
IDENTITY_ENV = ("WORKUP_GATEWAY_KEY", "WORKUP_GATEWAY_PUBLIC_KEY", "WORKUP_SERVICE_KEY")
_DIR = "identity"  # in the data directory: gateway.key, gateway.pub, service.key


def _generated(data_dir: Path, name: str, create: bool) -> str | None:
    """The data directory's generated private key ``name`` (and its ``.pub``), made on first use
    when ``create``, mode 0600, as ``control.key`` is."""
    folder = data_dir / _DIR
    path = folder / f"{name}.key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        if not create:
            return None
    key, ours = create_secret_file(path, new_key())
    if ours:
        (folder / f"{name}.pub").write_text(public_key_of(key) + "\n")
    return key


def load_identity(settings: Settings, role: Literal["gateway", "service", "both"], *,
                  create: bool) -> Identity:
    """The keys a ``role`` process holds: ``WORKUP_GATEWAY_KEY`` (gateway), ``WORKUP_GATEWAY_PUBLIC_KEY``
    and ``WORKUP_SERVICE_KEY`` (services), each also as ``*_FILE``; otherwise the keys in
    ``<data_dir>/identity/``, generated there first when ``create`` (one machine: ``workup up``, a
    dev ``workup worker`` beside a ``workup gateway``). ``both`` is one process that is the whole
    system. A role reads only the variables of the keys it holds."""
    s, data = settings, settings.data_path
    serves = role != "gateway"   # only what the role holds is read (a gateway has no service key file)
    gw = read_secret(s.gateway_key, s.gateway_key_file, "gateway_key") if role != "service" or not (
        s.gateway_public_key or s.gateway_public_key_file) else None
    gw_pub = read_secret(s.gateway_public_key, s.gateway_public_key_file, "gateway_public_key") if serves else None
    svc = read_secret(s.service_key, s.service_key_file, "service_key") if serves else None
    if role in ("gateway", "both") and not gw:
        gw = _generated(data, "gateway", create)
        if not gw:
            raise SettingsError("gateway_key: set WORKUP_GATEWAY_KEY or WORKUP_GATEWAY_KEY_FILE")
    if role in ("service", "both"):
        if not gw_pub and not gw:
            generated = _generated(data, "gateway", create)   # a service keeps the public half only
            if not generated:
                raise SettingsError("gateway_public_key: set WORKUP_GATEWAY_PUBLIC_KEY or WORKUP_GATEWAY_PUBLIC_KEY_FILE")
            gw_pub = public_key_of(generated)
        if not svc:
            svc = _generated(data, "service", create)
            if not svc:
                raise SettingsError("service_key: set WORKUP_SERVICE_KEY or WORKUP_SERVICE_KEY_FILE")
    gateway_key = _private(gw, "gateway_key") if gw and role != "service" else None
    public = _public(gw_pub, "gateway_public_key") if gw_pub else None
    if public is None and gw and role != "gateway":
        public = _private(gw, "gateway_key").public_key()
    return Identity(gateway_key=gateway_key, gateway_public=public,
                    service_key=_private(svc, "service_key") if svc and role != "gateway" else None)


_process_default: Identity | None = None


def default_identity() -> Identity:
    """The keys of a transport built without any: the ``WORKUP_*`` identity variables when set
    (so processes a test starts agree with it), else keys made once per process (every transport
    of the process agrees with every other, nobody outside it can sign)."""
    global _process_default
    if _process_default is None:
        gw, pub, svc = (os.environ.get(name) for name in IDENTITY_ENV)
        if gw or pub or svc:  # whatever is set, as load_identity would read it
            _process_default = Identity(
                gateway_key=_private(gw, "gateway_key") if gw else None,
                gateway_public=_public(pub, "gateway_public_key") if pub else None,
                service_key=_private(svc, "service_key") if svc else None)
        else:
            _process_default = Identity.generate()
    return _process_default


def identity_env(identity: Identity | None = None) -> dict[str, str]:
    """``identity``'s keys (default: this process's, :func:`default_identity`) as the ``WORKUP_*``
    variables: what a test or bench adds to the environment of the processes it starts, so that
    they and the transports it builds itself trust one another."""
    i = identity or default_identity()
    if i.gateway_key is None or i.service_key is None:
        raise ValueError("identity_env needs an identity that holds both private keys")
    gw, svc = (_b64(k.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())).decode()
               for k in (i.gateway_key, i.service_key))
    return dict(zip(IDENTITY_ENV, (gw, public_key_of(gw), svc)))


if __name__ == "__main__":  # a new key pair for an operator: private, then public
    _key = new_key()
    print(_key)
    print(public_key_of(_key))
