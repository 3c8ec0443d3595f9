"""JWT issue/verify: the allow-list, signature, claims and the verification cache."""

import base64
import json
import time

import pytest
from jwcrypto import jwk, jws

from workup.gateway import InvalidToken, TokenService
from workup.settings import SettingsError

KEY = "k" * 40
OTHER = "o" * 40


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, claims: dict, sign_key: jwk.JWK | None = None, alg: str = "HS256") -> str:
    if sign_key is None:
        return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.sig"
    token = jws.JWS(json.dumps(claims).encode())
    token.add_signature(sign_key, alg=alg, protected=header)
    return token.serialize(compact=True)


def claims(**over):
    now = int(time.time())
    base = {"iss": "workup", "aud": "workup-api", "sub": "u1", "role": "CLIENT", "iat": now, "exp": now + 60}
    base.update(over)
    return base


def oct_key(secret: str) -> jwk.JWK:
    return jwk.JWK(kty="oct", k=b64(secret.encode()))


def test_issue_then_verify():
    svc = TokenService([KEY])
    c = svc.verify(svc.issue("u1", "FREELANCER"))
    assert (c.sub, c.role, c.iss) == ("u1", "FREELANCER", "workup")
    assert c.exp - c.iat == 24 * 3600
    assert c.aud == "workup-api" and c.nbf is None


def signed(**over) -> str:
    return forge({"alg": "HS256", "typ": "JWT"}, claims(**over), oct_key(KEY))


def test_forged_valid_claims_accepted():
    # the helper's claims are a valid token: the refusals below are each for their one claim
    assert TokenService([KEY]).verify(signed()).sub == "u1"
    assert TokenService([KEY]).verify(signed(aud=["other", "workup-api"])).sub == "u1"
    assert TokenService([KEY]).verify(signed(nbf=int(time.time()) - 5)).sub == "u1"
    assert TokenService([KEY]).verify(signed(nbf=int(time.time()) + 10)).sub == "u1"   # within the leeway


@pytest.mark.parametrize("bad, reason", [
    ({"nbf": int(time.time()) + 3600}, "not valid yet"),
    ({"aud": "someone-else"}, "audience"),
    ({"aud": ["a", "b"]}, "audience"),
    ({"aud": []}, "audience"),
    ({"exp": 1e308}, "lifetime"),
    # read at run time: a time taken at collection is minutes old when a long run reaches it
    (lambda: {"exp": int(time.time()) + 24 * 3600 + 60}, "lifetime"),
    ({"iat": 0}, "lifetime"),
])
def test_claims_checked(bad, reason):
    bad = bad() if callable(bad) else bad
    with pytest.raises(InvalidToken, match=reason):
        TokenService([KEY]).verify(signed(**bad))


def test_lifetime_is_the_configured_one():
    svc = TokenService([KEY], lifetime=600)
    c = svc.verify(svc.issue("u1", "CLIENT"))
    assert c.exp - c.iat == 600
    with pytest.raises(InvalidToken, match="lifetime"):
        svc.verify(signed(exp=int(time.time()) + 601))
    assert TokenService([KEY]).verify(signed(exp=int(time.time()) + 601)).sub == "u1"


def test_rotation_second_key_verifies_first_signs():
    old = TokenService([OTHER]).issue("u1", "CLIENT")
    svc = TokenService([KEY, OTHER])
    assert svc.verify(old).sub == "u1"
    assert TokenService([KEY]).verify(svc.issue("u2", "ADMIN")).sub == "u2"


@pytest.mark.parametrize("mutate", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),               # signature
    lambda t: t.split(".")[0] + "." + b64(json.dumps(claims(role="ADMIN")).encode()) + "." + t.split(".")[2],  # payload
    lambda t: t + ".x",
    lambda t: "",
    lambda t: "a.b.c",
    lambda t: "..",
])
def test_tampered_tokens_refused(mutate):
    svc = TokenService([KEY])
    with pytest.raises(InvalidToken):
        svc.verify(mutate(svc.issue("u1", "CLIENT")))


def test_alg_none_refused():
    svc = TokenService([KEY])
    for alg in ("none", "None", "NONE"):
        token = f"{b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims()).encode())}."
        with pytest.raises(InvalidToken):
            svc.verify(token)


def test_other_key_refused():
    with pytest.raises(InvalidToken, match="signature"):
        TokenService([KEY]).verify(TokenService([OTHER]).issue("u1", "CLIENT"))


def test_key_confusion_refused():
    rsa = jwk.JWK.generate(kty="RSA", size=2048)
    svc = TokenService([KEY])
    # an RS256 token (asymmetric algorithm): refused by the allow-list before any key is used
    with pytest.raises(InvalidToken, match="not allowed"):
        svc.verify(forge({"alg": "RS256"}, claims(), rsa, "RS256"))
    # HS256 signed with a public key as the HMAC secret: just a wrong signature
    public_pem = rsa.export_to_pem().decode()
    with pytest.raises(InvalidToken, match="signature"):
        svc.verify(forge({"alg": "HS256"}, claims(), oct_key(public_pem)))
    for alg in ("HS384", "HS512", "ES256", "PS256"):
        with pytest.raises(InvalidToken, match="not allowed"):
            svc.verify(forge({"alg": alg}, claims()))


@pytest.mark.parametrize("bad", [
    {"exp": int(time.time()) - 1},
    {"iss": "someone-else"},
    {"iat": int(time.time()) + 3600},
    {"sub": ""},
    {"role": "SERVICE"},
    {"role": "ROOT"},
])
def test_bad_claims_refused(bad):
    token = forge({"alg": "HS256", "typ": "JWT"}, claims(**bad), oct_key(KEY))
    with pytest.raises(InvalidToken):
        TokenService([KEY]).verify(token)


@pytest.mark.parametrize("missing", ["iss", "aud", "sub", "role", "iat", "exp"])
def test_missing_claims_refused(missing):
    c = claims()
    del c[missing]
    with pytest.raises(InvalidToken):
        TokenService([KEY]).verify(forge({"alg": "HS256"}, c, oct_key(KEY)))


def test_cached_token_still_expires():
    now = [1_000_000.0]
    svc = TokenService([KEY], lifetime=10, clock=lambda: now[0])
    token = svc.issue("u1", "CLIENT")
    assert svc.verify(token).sub == "u1"
    now[0] += 11
    with pytest.raises(InvalidToken, match="expired"):
        svc.verify(token)


def test_cache_is_bounded():
    svc = TokenService([KEY], cache_size=3)
    for i in range(10):
        svc.verify(svc.issue(f"u{i}", "CLIENT"))
    assert len(svc._cache) == 3


def test_short_key_is_a_settings_error():
    with pytest.raises(SettingsError):
        TokenService(["short"])
    with pytest.raises(SettingsError):
        TokenService([])


def test_keys_from_settings(tmp_path):
    from workup.gateway import jwt_keys_from
    from workup.settings import Settings
    assert jwt_keys_from(Settings(jwt_key="a" * 20)) == ["a" * 20]
    assert jwt_keys_from(Settings(jwt_key="new-key-1234567890, old-key-1234567890")) == [
        "new-key-1234567890", "old-key-1234567890"]
    secret = tmp_path / "jwt"
    secret.write_text("from-a-file-0123456789\n")
    assert jwt_keys_from(Settings(jwt_key="ignored-key-12345678", jwt_key_file=str(secret))) == ["from-a-file-0123456789"]
    with pytest.raises(SettingsError):
        jwt_keys_from(Settings(data_dir=str(tmp_path)))
    with pytest.raises(SettingsError):
        jwt_keys_from(Settings(jwt_key_file=str(tmp_path / "missing")))
    generated = jwt_keys_from(Settings(data_dir=str(tmp_path / "d")), generate=True)
    assert len(generated[0]) >= 32 and (tmp_path / "d" / "jwt.key").stat().st_mode & 0o777 == 0o600
    assert jwt_keys_from(Settings(data_dir=str(tmp_path / "d")), generate=True) == generated
