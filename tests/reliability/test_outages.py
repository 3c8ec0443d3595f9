"""Figures 2 and 3 of docs/reliability.md, shorter: a private RabbitMQ, Redis, PostgreSQL,
FerretDB or Cassandra SIGKILLed (Redis also SIGSTOPped) under load and started again
(``python -m tests.reliability.outages <server>`` is the full run)."""

from __future__ import annotations

import pytest
import trio

from .outages import measure

SERVICES = ("users", "payments", "jobs", "contracts")
# which services keep answering 2xx while the server is away: those that do not use it
UNTOUCHED = {"rabbitmq": (), "redis": SERVICES, "redis-pause": SERVICES, "postgres": ("users", "jobs", "contracts"),
             "ferretdb": ("payments", "jobs", "contracts"), "cassandra": ("users", "payments")}

# the services that answer 503 while the store is away (a write cannot be served from a cache)
STORE_OF = {"postgres": ("payments",), "ferretdb": ("users",), "cassandra": ("jobs", "contracts")}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("target", ["rabbitmq", "redis", "redis-pause", "postgres", "ferretdb", "cassandra"])
async def test_a_server_away_under_load_costs_no_hang_no_money_and_recovers(target: str) -> None:
    f = await trio.to_thread.run_sync(lambda: measure(target, down=8, lanes=3, warm=5, settle=5))
    assert f.hangs == 0, f.slowest_while_down
    assert f.late == 0, f.slowest_while_down           # never past the gateway's deadline
    assert f.internal_errors == 0, f.phases             # a server away is a 503, not a 500
    assert sorted(f.recovered_after_s) == sorted(SERVICES), f.failures
    assert f.errors_after_recovery == []
    assert f.health_after == "200"
    assert f.money_ok, f.failures                     # no confirmed deposit lost, none applied twice
    away = f.phases.get("down", {})
    for service in UNTOUCHED[target]:
        assert set(away.get(service, {})) <= {"200", "201"}, (service, away)
    if target == "rabbitmq":
        assert set(f.health_while_down) == {"503"}, f.health_while_down
        # the gateway answers while the broker is away (503/504), it does not wait for it
        assert sum(n for counts in away.values() for o, n in counts.items() if o in ("503", "504")) > 0, away
    for service in STORE_OF.get(target, ()):
        assert away.get(service, {}).get("503", 0) > 0, (service, away)
    if target == "cassandra":   # the driver tries the node again within 4 s (was: ~30 s and more)
        assert max(f.recovered_after_s.values()) <= 20, f.recovered_after_s
    assert f.ok, f.failures
