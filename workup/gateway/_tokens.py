"""JWT issue and verification (jwcrypto, HS256 only), with a bounded cache of verified tokens.

A token's claims: ``iss`` (``"workup"``), ``aud`` (``"workup-api"``), ``sub`` (user id), ``role``,
``iat``, ``exp``, and an optional ``nbf``. Verification checks the header's ``alg`` against the
allow-list *before* any key is used (``alg:none`` and key-confusion tokens signed with a public key
as an HMAC secret are refused), then the signature with each configured key (the first one signs;
the others allow a rotation), then the claims: issuer, audience, ``iat`` and ``nbf`` not in the
future, not expired, and ``exp - iat`` no longer than the configured lifetime (so a token minted
with the real key but ``exp = 1e308`` does not live for ever).
Successful verifications are kept per token string in an LRU, so the hot path is a dict lookup and
an ``exp`` comparison.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections import OrderedDict
from typing import Callable, Literal, Sequence

import msgspec
from jwcrypto import jwk, jws
from jwcrypto.common import JWException

from ..transport.envelope import Caller
from ..settings import Settings, SettingsError, ensure_secret, read_secret

__all__ = ["InvalidToken", "TokenService", "Claims", "jwt_keys_from", "ALGORITHMS", "ISSUER", "AUDIENCE"]

ALGORITHMS = ("HS256",)
ISSUER = "workup"
AUDIENCE = "workup-api"   # the REST API: a token minted for something else is not ours
MIN_KEY_LENGTH = 16


class InvalidToken(Exception):
    """The token is malformed, badly signed, expired or has wrong claims (HTTP 401)."""


class _Header(msgspec.Struct):
    alg: str
    typ: str = "JWT"


class Claims(msgspec.Struct, frozen=True):
    iss: str
    aud: str | list[str]        # RFC 7519: one audience or a list of them
    sub: str
    role: Literal["CLIENT", "FREELANCER", "ADMIN"]
    iat: float
    exp: float
    nbf: float | None = None

    @property
    def caller(self) -> Caller:
        return Caller(user_id=self.sub, role=self.role)


_header_decoder = msgspec.json.Decoder(_Header)
_claims_decoder = msgspec.json.Decoder(Claims)
_claims_encoder = msgspec.json.Encoder()


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _oct_key(secret: str) -> jwk.JWK:
    k = base64.urlsafe_b64encode(secret.encode()).rstrip(b"=").decode()
    return jwk.JWK(kty="oct", k=k)


class TokenService:
    def __init__(self, keys: Sequence[str], *, lifetime: float = 24 * 3600, leeway: float = 30,
                 cache_size: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        if not keys:
            raise SettingsError("jwt_key: no signing key configured")
        for key in keys:
            if len(key) < MIN_KEY_LENGTH:
                raise SettingsError(f"jwt_key must be at least {MIN_KEY_LENGTH} characters long")
        self._keys = [_oct_key(k) for k in keys]
        self._lifetime = lifetime
        self._leeway = leeway
        self._clock = clock
        self._cache: OrderedDict[str, Claims] = OrderedDict()
        self._cache_size = cache_size

    def issue(self, user_id: str, role: str) -> str:
        now = int(self._clock())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": user_id, "role": role, "iat": now,
                  "exp": now + int(self._lifetime)}
        token = jws.JWS(_claims_encoder.encode(claims))
        token.add_signature(self._keys[0], alg="HS256", protected={"alg": "HS256", "typ": "JWT"})
        return token.serialize(compact=True)

    def verify(self, token: str) -> Claims:
        """The token's claims, or :class:`InvalidToken`."""
        claims = self._cache.get(token)
        if claims is not None:
            if claims.exp > self._clock():
                self._cache.move_to_end(token)
                return claims
            del self._cache[token]
            raise InvalidToken("token expired")
        claims = self._verify_uncached(token)
        self._cache[token] = claims
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return claims

    def _verify_uncached(self, token: str) -> Claims:
        parts = token.split(".")
        if len(parts) != 3 or not all(parts):
            raise InvalidToken("malformed token")
        try:
            header = _header_decoder.decode(_b64decode(parts[0]))
        except (msgspec.DecodeError, binascii.Error, ValueError):
            raise InvalidToken("malformed token header") from None
        if header.alg not in ALGORITHMS:
            raise InvalidToken(f"token algorithm {header.alg!r} not allowed")
        payload = self._check_signature(token)
        try:
            claims = _claims_decoder.decode(payload)
        except msgspec.DecodeError:
            raise InvalidToken("malformed token claims") from None
        now = self._clock()
        if claims.iss != ISSUER:
            raise InvalidToken("wrong token issuer")
        if AUDIENCE not in ([claims.aud] if isinstance(claims.aud, str) else claims.aud):
            raise InvalidToken("wrong token audience")
        if not claims.sub:
            raise InvalidToken("token has no subject")
        if claims.iat > now + self._leeway:
            raise InvalidToken("token issued in the future")
        if claims.nbf is not None and claims.nbf > now + self._leeway:
            raise InvalidToken("token not valid yet")
        if claims.exp <= now:
            raise InvalidToken("token expired")
        # written as a negation so that NaN-like values fail too; the signing key alone must not
        # be enough to make a token that outlives the configured lifetime
        if not claims.exp - claims.iat <= self._lifetime:
            raise InvalidToken("token lifetime longer than allowed")
        return claims

    def _check_signature(self, token: str) -> bytes:
        for key in self._keys:
            obj = jws.JWS()
            obj.allowed_algs = list(ALGORITHMS)
            try:
                obj.deserialize(token)
                obj.verify(key, alg="HS256")
            except (JWException, ValueError, TypeError):
                continue
            return obj.payload
        raise InvalidToken("bad token signature")


def jwt_keys_from(settings: Settings, *, generate: bool = False) -> list[str]:
    """The signing key(s) from ``WORKUP_JWT_KEY``/``_FILE`` (comma-separated: the first signs, all
    verify); with ``generate`` (``workup up``) a key kept in the data directory otherwise."""
    value = read_secret(settings.jwt_key, settings.jwt_key_file, "jwt_key")
    if not value and generate:
        value = ensure_secret(settings.data_path, "jwt.key")
    if not value:
        raise SettingsError("jwt_key: set WORKUP_JWT_KEY or WORKUP_JWT_KEY_FILE")
    return [k.strip() for k in value.split(",") if k.strip()]
