"""workup.ids: the one copy of ids and timestamps. The derived ids are pinned to the values the
code made before the ids were gathered here: stored data and redelivered commands depend on them."""

from __future__ import annotations

import datetime as dt
import re

from workup.ids import CONTRACT_IDS, REQUEST_IDS, USER_IDS, derived_id, new_id, now_ms, rfc3339, utc_now
from workup.services.contracts.store import contract_id_for, milestone_id_for

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_derived_ids_keep_the_values_each_space_made_before():
    # jobs.CreateJob, jobs.CreateProposal and contracts.RequestTermination: uuid5 of "<purpose>:<request id>"
    assert derived_id(REQUEST_IDS, "job", "req-1") == "ad2a5945c7445448b24ef59e967b7440"
    # a contract from its proposal, a milestone from (contract, position)
    assert contract_id_for("p1") == derived_id(CONTRACT_IDS, "contract", "p1") == "1be31ac31e215cdebf9d91d745de2299"
    assert milestone_id_for("c1", 2) == "37e5afb8297e5cdfaa98323171371924"
    # users: sha256 of the parts joined by U+001F, first 32 hex digits
    assert derived_id(USER_IDS, "req-1", "register", "ann@example.com") == "e8968c8405dd762b0bb63d9e25f6812b"
    assert derived_id(USER_IDS, "req-1", "add", "skills") == "7309e331b4bf28d602a4bd2be7e1b86c"


def test_derived_ids_depend_on_space_and_every_part():
    ids = {derived_id(REQUEST_IDS, "job", "r"), derived_id(REQUEST_IDS, "proposal", "r"),
           derived_id(REQUEST_IDS, "job", "s"), derived_id(CONTRACT_IDS, "job", "r"), derived_id(USER_IDS, "job", "r")}
    assert len(ids) == 5 and all(HEX32.match(i) for i in ids)
    assert derived_id(USER_IDS, "r", "a") == derived_id(USER_IDS, "r", "a")


def test_new_ids_are_fresh_32_hex():
    a, b = new_id(), new_id()
    assert a != b and HEX32.match(a) and HEX32.match(b)


def test_rfc3339_is_utc_with_milliseconds():
    assert rfc3339(1733333333123) == "2024-12-04T17:28:53.123Z"
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1733333333000) == "2024-12-04T17:28:53.000Z"


def test_now_ms_and_utc_now_agree():
    before = now_ms()
    t = utc_now()
    after = now_ms()
    assert t.tzinfo is dt.timezone.utc
    assert before - 1 <= int(t.timestamp() * 1000) <= after + 1
