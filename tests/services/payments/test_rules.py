"""Pure decisions of the payments service: money validation, migrations, the outbox retry policy
(the runtime's one, which payments uses), path ids, cache keys, stored answers, inbox keys."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from workup.transport.envelope import encode_json
from workup.gateway.routing import path_id
from workup.messages import payments as m
from workup.problems import ProblemError
from workup.services.payments.commands import answer, cache_keys, idem_key, inbox_key
from workup.services.payments.ops import MAX_BALANCE, Changed, Outcome, _credit_check
from workup.runtime.outbox import MAX_DELAY, next_step
from workup.services.payments.schema import MIGRATIONS, migration_statements, pending

D = Decimal


@pytest.mark.parametrize("value, reason", [
    ("0.01", None), ("1", None), ("1.5", None), ("1.50", None), ("1.500", None), ("1E+2", None),
    ("1000000000", None), ("1000000000.00", None),
    ("0", "greater than 0"), ("-0.01", "greater than 0"), ("0.001", "2 decimal places"),
    ("1.005", "2 decimal places"), ("1000000000.01", "at most 1000000000"), ("1E+10", "at most"),
    ("NaN", "finite"), ("Infinity", "finite"), ("-Infinity", "finite"), ("sNaN", "finite"),
])
def test_amount_rules(value, reason):
    problem = m.amount_problem(D(value))
    if reason is None:
        assert problem is None
        assert m.check_amount(D(value)) == D(value) and m.check_amount(D(value)).as_tuple().exponent == -2
    else:
        assert reason in problem
        with pytest.raises(ValueError):
            m.check_amount(D(value))


def test_money_body_takes_only_json_numbers_exactly():
    body = msgspec.json.decode(b'{"amount": 0.1, "description": "x"}', type=m.MoneyBody)
    assert body.money() == D("0.10")
    for bad in (b'{"amount": "1"}', b'{"amount": true}', b'{"amount": [1]}', b'{"amount": 1.234}'):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(bad, type=m.MoneyBody)
    with pytest.raises(msgspec.ValidationError, match="description"):
        msgspec.json.decode(b'{"amount": 1, "description": "' + b"x" * 501 + b'"}', type=m.MoneyBody)


def test_credit_never_exceeds_the_column():
    assert _credit_check(MAX_BALANCE - D(1), D(1)) == MAX_BALANCE
    with pytest.raises(ProblemError) as exc:
        _credit_check(MAX_BALANCE, D("0.01"))
    assert exc.value.status == 409


def test_pending_migrations():
    assert pending([]) == MIGRATIONS
    assert pending([1]) == MIGRATIONS[1:]
    assert pending([m[0] for m in MIGRATIONS]) == []
    assert pending([1], [(2, "b"), (1, "a"), (3, "c")]) == [(2, "b"), (3, "c")]
    statements = migration_statements(MIGRATIONS[0][1], {"money": "M", "ts": "T", "blob": "B", "serial": "S"})
    assert all("{" not in s for s in statements) and any("CHECK (balance >= 0)" in s for s in statements)


def test_outbox_retry_policy():
    assert next_step(None, 0) == ("done", 0.0)
    assert next_step(ProblemError(503, "down"), 0) == ("retry", 0.5)
    assert next_step(ProblemError(504, "late"), 3) == ("retry", 4.0)
    assert next_step(RuntimeError("connection reset"), 100) == ("retry", MAX_DELAY)
    assert next_step(ProblemError(429, "slow down"), 1)[0] == "retry"
    assert next_step(ProblemError(404, "no milestone"), 0) == ("dead", 0.0)
    assert next_step(ProblemError(409, "illegal"), 5) == ("dead", 0.0)


def test_cache_keys_and_stored_answers():
    assert cache_keys(Changed("wallet", "u1", 3, ("u1",))) == ["workup:payments:wallet:u1"]
    assert cache_keys(Changed("request", "r1", 2, ("c", "f"))) == [
        "workup:payments:request:r1:c", "workup:payments:request:r1:f"]
    assert answer(Outcome(200, b'{"balance":1.00}')) == msgspec.Raw(b'{"balance":1.00}')
    refused = ProblemError(409, "insufficient balance")
    with pytest.raises(ProblemError) as exc:
        answer(Outcome(409, encode_json(refused.problem)))
    assert exc.value.problem == refused.problem
    assert idem_key("u", "r", None) is None
    for bad in ("", "x" * 256):
        with pytest.raises(ProblemError):
            idem_key("u", "r", bad)


def test_path_ids():
    hex_id = "0123456789abcdef0123456789abcdef"
    assert path_id(hex_id) == hex_id
    assert path_id("01234567-89AB-CDEF-0123-456789ABCDEF") == hex_id
    for bad in ("", "nope", hex_id + "0", "../etc"):
        with pytest.raises(ProblemError) as exc:
            path_id(bad)
        assert exc.value.status == 400


def test_idempotency_routes():
    assert m.idempotency_route(m.Deposit) == "wallet/deposit"
    assert m.idempotency_route(m.Withdraw) == "wallet/withdraw"
    assert m.idempotency_route(m.PayRequest, "abc") == "requests/abc/pay"
    with pytest.raises(ValueError):
        m.idempotency_route(m.GetMyWallet)


def test_inbox_keys():
    """Without an Idempotency-Key a command's request id (and its digest) is its inbox row."""
    deposit = m.Deposit(amount=Decimal("5"))
    key = inbox_key("u1", "wallet/deposit", "req-1", deposit)
    assert key.user_id == "u1" and key.route == "inbox:wallet/deposit" and key.key.startswith("req-1:")
    assert inbox_key("u1", "wallet/deposit", "req-1", m.Deposit(amount=Decimal("5"))) == key  # a redelivery
    assert inbox_key("u1", "wallet/deposit", "req-2", deposit) != key                       # another request
    assert inbox_key("u1", "wallet/deposit", "req-1", m.Deposit(amount=Decimal("6"))) != key  # a reused X-Request-Id
    assert idem_key("u1", "wallet/deposit", "req-1") != key         # a client's key never meets an inbox row
