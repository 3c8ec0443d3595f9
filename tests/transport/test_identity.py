"""The caller assertion (``workup/transport/identity.py``): what it proves, what it refuses, and
where its keys come from. Pure: no transport, no broker."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest

from workup.settings import Settings, SettingsError
from workup.transport.envelope import ANONYMOUS, SERVICE_CALLER, Caller
from workup.transport.identity import (IDENTITY_ENV, Identity, IdentityRefused, load_identity,
                                       new_key, public_key_of)

CMD, RID, BODY = "payments.Withdraw", "rid-1", b"\x81\xa6amount\xa6123.45"
VICTIM = Caller("victim", "CLIENT")
LATER = time.time() + 7 * 24 * 3600   # a deadline still ahead however long after collection a test runs


def signed(identity: Identity, caller: Caller = VICTIM, command: str = CMD, deadline: float = LATER,
           body: bytes = BODY) -> str:
    return identity.sign(command, caller, deadline, RID, body)


def refused(identity: Identity, assertion: str, *, caller: Caller = VICTIM, command: str = CMD,
            deadline: float = LATER, body: bytes = BODY, now: float | None = None) -> str:
    with pytest.raises(IdentityRefused) as info:
        identity.check(assertion, command, caller, deadline, RID, body, time.time() if now is None else now)
    return str(info.value)


def test_a_genuine_assertion_holds_for_users_anonymous_and_services():
    system = Identity.generate()
    service = system.for_service()
    for caller in (VICTIM, ANONYMOUS, SERVICE_CALLER):
        service.check(signed(system, caller), CMD, caller, LATER, RID, BODY, time.time())


def test_stripped_forged_altered_expired_and_other_command_are_refused():
    system, attacker = Identity.generate(), Identity.generate()
    service = system.for_service()
    good = signed(system)
    assert "no caller assertion" in refused(service, "")
    assert "trusted key" in refused(service, signed(attacker))                      # another key
    assert "not Withdraw" not in refused(service, good, command="payments.Deposit")
    assert "is for payments.Withdraw" in refused(service, good, command="payments.Deposit")
    assert "caller differs" in refused(service, good, caller=Caller("attacker", "CLIENT"))
    assert "caller differs" in refused(service, good, caller=Caller("victim", "ADMIN"))
    assert "body differs" in refused(service, good, body=BODY + b"0")
    assert "deadline differs" in refused(service, good, deadline=LATER + 3600)
    assert "expired" in refused(service, good, now=LATER)
    # a claim changed under the genuine signature
    header, payload, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "attacker"
    tampered = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert "trusted key" in refused(service, f"{header}.{tampered}.{sig}", caller=Caller("attacker", "CLIENT"))
    # another header (alg none, a kid...) is not even read
    none = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    assert "malformed" in refused(service, f"{none}.{payload}.{sig}")
    assert "malformed" in refused(service, "garbage")


def test_each_key_speaks_for_its_own_callers_only():
    system = Identity.generate()
    service = system.for_service()
    gateway = system.for_gateway()
    with pytest.raises(IdentityRefused):
        signed(gateway, SERVICE_CALLER)             # the gateway cannot call as SERVICE
    with pytest.raises(IdentityRefused):
        signed(system.for_service(), VICTIM)        # a service cannot speak for a user
    # a SERVICE claim under the gateway key (or a user's under the service key) fails the signature
    gw_only = Identity(gateway_key=system.gateway_key, service_key=system.gateway_key)
    assert "trusted key" in refused(service, signed(gw_only, SERVICE_CALLER), caller=SERVICE_CALLER)
    svc_as_gw = Identity(gateway_key=system.service_key)
    assert "trusted key" in refused(service, signed(svc_as_gw, VICTIM))
    # a gateway holds nothing to check SERVICE with
    assert "trusts no key" in refused(gateway, signed(system, SERVICE_CALLER), caller=SERVICE_CALLER)


def test_keys_from_settings_files_and_the_data_dir(tmp_path):
    gw, svc = new_key(), new_key()
    key_file = tmp_path / "svc.key"
    key_file.write_text(svc + "\n")
    loaded = load_identity(Settings(gateway_public_key=public_key_of(gw), service_key_file=str(key_file)),
                           "service", create=False)
    assert loaded.gateway_key is None and loaded.service_key is not None
    loaded.check(signed(load_identity(Settings(gateway_key=gw), "gateway", create=False)),
                 CMD, VICTIM, LATER, RID, BODY, time.time())
    # a role reads only its own keys: a gateway is not bothered by the services' files
    missing = str(tmp_path / "not-mounted")
    assert load_identity(Settings(gateway_key=gw, service_key_file=missing, gateway_public_key_file=missing),
                         "gateway", create=False).service_key is None
    with pytest.raises(SettingsError, match="gateway_public_key"):
        load_identity(Settings(data_dir=str(tmp_path / "none")), "service", create=False)
    with pytest.raises(SettingsError, match="gateway_key"):
        load_identity(Settings(gateway_key="short"), "gateway", create=False)
    # generated once into the data dir, private keys 0600, and read back the same by every role
    data = Settings(data_dir=str(tmp_path / "data"))
    both = load_identity(data, "both", create=True)
    assert oct(os.stat(tmp_path / "data" / "identity" / "gateway.key").st_mode & 0o777) == "0o600"
    assert (tmp_path / "data" / "identity" / "gateway.pub").read_text().strip() == public_key_of(
        (tmp_path / "data" / "identity" / "gateway.key").read_text().strip())
    load_identity(data, "service", create=True).check(
        signed(load_identity(data, "gateway", create=True)), CMD, VICTIM, LATER, RID, BODY, time.time())
    load_identity(data, "service", create=False).check(signed(both, SERVICE_CALLER), CMD, SERVICE_CALLER,
                                                       LATER, RID, BODY, time.time())


def test_the_documented_variables_are_the_settings_fields():
    assert {v.removeprefix("WORKUP_").lower() for v in IDENTITY_ENV} <= set(Settings.__struct_fields__)
