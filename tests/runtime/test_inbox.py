"""The pure decisions of the once-mechanism (``workup/runtime/inbox.py``): what a command's key is,
which rows an owner keeps, what a repeat answers and when the runtime rewrites the recorded
answer. The mechanism against real stores and brokers: ``tests/services/users/test_once.py`` and
``tests/services/contracts/test_once.py``."""

from __future__ import annotations

from workup.runtime.inbox import (KEEP_PER_OWNER, SKEW_MS, Once, Recorded, as_recorded, kept, once_key, record,
    recorded_in, replay)
from workup.transport.envelope import Caller, Reply

FAY = Caller("fay", "FREELANCER")
NOW = 1_800_000_000_000
DEADLINE = 1_800_000_010.0    # unix seconds, as the envelope carries it
UNTIL = 1_800_000_010_000 + SKEW_MS


def test_the_key_is_the_request_id_and_the_body_digest():
    k = once_key("users.RemoveSkill", "rid1", b"\x81\xa5skill\xa2go", FAY)
    assert k == once_key("users.RemoveSkill", "rid1", b"\x81\xa5skill\xa2go", FAY)   # a redelivery
    assert k.owner == "fay" and k.id.startswith("users.RemoveSkill:rid1:")
    assert once_key("users.RemoveSkill", "rid2", b"\x81\xa5skill\xa2go", FAY).id != k.id   # a new command
    assert once_key("users.RemoveSkill", "rid1", b"\x81\xa5skill\xa2py", FAY).id != k.id   # same id, other body
    assert once_key("users.RemoveLanguage", "rid1", b"\x81\xa5skill\xa2go", FAY).id != k.id
    assert once_key("users.DeleteMe", "r", b"", Caller()).owner == ""


def test_a_repeat_gets_the_first_reply_byte_for_byte():
    once = Once(once_key("contracts.HandleTermination", "r", b"x", Caller("a", "ADMIN")), 200, DEADLINE)
    row = once.record({"id": "t1", "status": "REJECTED"})
    assert once.recorded is row and row.until_ms == UNTIL   # kept while a copy can still be handled
    assert replay(row) == Reply(200, b'{"id":"t1","status":"REJECTED"}')
    none = Once(once_key("users.DeleteMe", "r", b"x", FAY), 204, DEADLINE).record(None)
    assert replay(none) == Reply(204, b"")
    assert record(None, {"a": 1}) is None        # not a once command: nothing to write


def test_the_runtime_rewrites_the_answer_only_when_the_reply_learnt_more():
    once = Once(once_key("contracts.EvaluateMilestone", "r", b"x", FAY), 200, DEADLINE)
    assert as_recorded(once, Reply(200, b"{}")) is None          # nothing recorded: no effect happened
    once.record({"status": "ACCEPTED", "paymentRequestId": None})
    assert as_recorded(once, Reply(200, b'{"status":"ACCEPTED","paymentRequestId":null}')) is None
    assert as_recorded(once, Reply(409, b'{"status":409}')) is None   # a refusal is never an answer to keep
    final = as_recorded(once, Reply(200, b'{"status":"ACCEPTED","paymentRequestId":"p1"}'))
    assert final == Recorded(once.key.id, 200, '{"status":"ACCEPTED","paymentRequestId":"p1"}', UNTIL)


def test_an_owner_keeps_its_newest_rows_while_a_copy_can_arrive():
    rows = [Recorded(f"k{i}", 204, "", UNTIL) for i in range(KEEP_PER_OWNER)]   # oldest first
    new = Recorded("new", 204, "", UNTIL)
    out = kept(rows, new, NOW)
    assert len(out) == KEEP_PER_OWNER and out[-1] == new and rows[0] not in out
    assert recorded_in(out, "new") == new and recorded_in(out, "nope") is None
    past = Recorded("past", 204, "", NOW)           # its deadline (and the margin) are over
    assert kept([past], new, NOW) == [new]
    again = Recorded("new", 200, "{}", UNTIL)
    assert kept([new], again, NOW) == [again]       # one row per key
