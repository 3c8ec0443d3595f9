"""A server of the distributed system stopped and restarted under load (``docs/reliability.md``,
figures 2 and 3):

    python -m tests.reliability.outages rabbitmq|redis|redis-pause|postgres|ferretdb|cassandra [--down 15]

The server named runs as a private instance of this run's own (``tests/amqp/_private_broker.py``,
``tests/cache/_private_redis.py``, ``_private_stores.py``); the others are the shared dev services,
never stopped. The split topology (``_system.py``) runs on them while ``--lanes`` clients loop over a
mix touching every service: users (profile write, ``GET /users/me``), payments (wallet read, a
1.00 deposit with an ``Idempotency-Key``), jobs (post, list own), contracts (list own). After
``--warm`` seconds the server is SIGKILLed (``redis-pause``: SIGSTOPped), ``--down`` seconds later
started again on the same port and data (SIGCONT), and the load goes on until every service has
answered 2xx again, no answer of the last 2 s was an error, and ``--settle`` seconds more.

Measured: every answer's status by phase (before, down, after), the slowest answer while the
server was away (the gateway's request deadline is 10 s: a client that waits 30 s for nothing is
counted as ``hang``), ``GET /health`` during and after, the seconds from the server's return to
each service's first 2xx (every operation) and to its last error, and errors after recovery.
Then every deposit whose answer was uncertain is sent again with its key until it is certain,
and each client's balance and ledger must equal its deposits exactly once: no confirmed deposit
lost, none applied twice. Exit 1 when a check fails: a hang, an answer after more than 12 s (the
gateway's 10 s deadline and some slack), a 500 (a server away is answered 503 with
``Retry-After``), a 503 without ``Retry-After``, an error after recovery, a service that did not
recover within ``--recover-within``, or money that does not add up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
import msgspec
import trio

from workup.bench.http import Response

from ._api import API, Api, Tally
from ._system import Servers, distributed

TARGETS = ("rabbitmq", "redis", "redis-pause", "postgres", "ferretdb", "cassandra")
STABLE_S = 2.0                  # recovered: no error among the answers of the last 2 s
HANG_S = 29.0                   # the client's own timeout is 30 s; the gateway's deadline 10 s
LATE_S = 12.0                   # the gateway's 10 s deadline and 2 s for a loaded machine


class Server(msgspec.Struct):
    """How a private server is taken away and brought back."""
    name: str
    url: str
    down: Callable[[], None]
    up: Callable[[], None]
    close: Callable[[], None]


@contextlib.contextmanager
def private(target: str) -> Iterator[Server]:
    if target == "rabbitmq":
        from tests.amqp._private_broker import PrivateBroker
        broker = PrivateBroker()
        broker.start()
        yield Server("rabbitmq", broker.url, broker.kill, broker.start, broker.remove)
    elif target.startswith("redis"):
        from tests.cache._private_redis import PrivateRedis
        redis = PrivateRedis()
        redis.start()
        pause = target == "redis-pause"
        yield Server("redis", redis.url, redis.pause if pause else redis.stop, redis.resume if pause else redis.start,
                     redis.close)
    else:
        from ._private_stores import PrivateCassandra, PrivateFerretDB, PrivatePostgres
        store: PrivatePostgres | PrivateFerretDB | PrivateCassandra = (
            PrivatePostgres() if target == "postgres" else PrivateFerretDB() if target == "ferretdb"
            else PrivateCassandra())
        store.start()
        yield Server(target, store.url, store.stop, store.start, store.close)


class Answer(msgspec.Struct, array_like=True):
    at: float          # seconds since the load began
    service: str
    op: str
    outcome: str       # the HTTP status, or "hang"/"connection"
    seconds: float


class Account(msgspec.Struct):
    token: str
    uncertain: list[str] = []                     # Idempotency-Keys of deposits without a certain answer
    counted: int = 0                              # deposits that took effect (certain)


class Figures(msgspec.Struct):
    target: str
    down_s: float
    restart_s: float = 0.0                        # the server's own start-up time after the down period
    phases: dict[str, dict[str, dict[str, int]]] = {}   # phase → service → outcome → count
    slowest_while_down_s: float = 0.0
    slowest_while_down: list[str] = []           # the five slowest answers begun while it was away
    health_while_down: dict[str, int] = {}
    health_after: str = ""
    recovered_after_s: dict[str, float] = {}      # server back → first 2xx of each service
    last_error_after_s: dict[str, float] = {}     # server back → the last non-2xx answer sent (each process back)
    errors_after_recovery: list[str] = []
    hangs: int = 0
    late: int = 0                                 # answers slower than LATE_S (hangs included)
    internal_errors: int = 0                      # 500s: a server away is a 503, not a bug
    no_retry_after: int = 0                       # 503s without Retry-After
    deposits_resent: int = 0
    money_ok: bool = False
    money: str = ""
    failures: list[str] = []

    @property
    def ok(self) -> bool:
        return not self.failures


NO_RETRY_AFTER = "503 without Retry-After"


def _outcome(answer: tuple[Response | None, str]) -> str:
    """The outcome of :meth:`Api.attempt`; a 503 that does not say when to retry is its own."""
    r, outcome = answer
    return NO_RETRY_AFTER if r is not None and r.status == 503 and "retry-after" not in r.headers else outcome


def _ops(api: Api, acct: Account) -> list[tuple[str, str, Callable[[], Awaitable[str]]]]:
    async def profile() -> str:
        return _outcome(await api.attempt("PUT", f"{API}/users/client/profile", token=acct.token,
                                          body={"city": "c" + secrets.token_hex(3)}))

    async def deposit() -> str:
        key = secrets.token_hex(16)
        acct.uncertain.append(key)    # until a certain answer: the lane may be cancelled mid-request
        r, outcome = await api.attempt("POST", f"{API}/payments/clients/me/wallet/deposit", token=acct.token,
                                       body={"amount": 1.00}, headers={"Idempotency-Key": key})
        if r is not None and r.status < 500:   # certain: applied (200) or refused; else sent again at the end
            acct.uncertain.remove(key)
            acct.counted += r.status == 200
        return _outcome((r, outcome))

    async def post_job() -> str:
        return _outcome(await api.attempt("POST", f"{API}/jobs", token=acct.token,
                                          body={"title": "Outage job", "description": "load", "budget": 10}))

    def get(path: str) -> Callable[[], Awaitable[str]]:
        async def read() -> str:
            return _outcome(await api.attempt("GET", f"{API}{path}", token=acct.token))
        return read
    return [("users", "profile", profile), ("users", "me", get("/users/me")),
            ("payments", "wallet", get("/payments/clients/me/wallet")), ("payments", "deposit", deposit),
            ("jobs", "post", post_job), ("jobs", "mine", get("/jobs/me")),
            ("contracts", "mine", get("/contracts/me"))]


async def run(base_url: str, server: Server, figures: Figures, *, lanes: int, warm: float, down: float,
              settle: float, recover_within: float) -> None:
    tally = Tally()
    api = Api(base_url, tally, timeout=HANG_S + 1)
    answers: list[Answer] = []
    accounts = [Account((await api.register("CLIENT", f"rel-o-{uuid.uuid4().hex[:12]}@example.com"))[0])
                for _ in range(lanes)]
    t0 = trio.current_time()
    marks: dict[str, float] = {}           # "down", "back" (server answering again), "recovered"

    async def lane(acct: Account) -> None:
        ops = _ops(api, acct)
        i = 0
        while True:
            service, op, call = ops[i % len(ops)]
            i += 1
            began = trio.current_time()
            outcome = await call()
            took = trio.current_time() - began
            answers.append(Answer(round(began - t0, 3), service, op, outcome, round(took, 3)))
            await trio.sleep(0.05)

    async def health() -> None:
        while True:
            # asked and answered while away, past the kill's first 1.5 s (the gateway's view of
            # a queue's consumers is kept for 1 s, and the kill itself takes a moment) and before
            # the restart began (the server answers before its start-up command returns)
            away = "down" in marks and "restarting" not in marks and trio.current_time() - t0 >= marks["down"] + 1.5
            _, outcome = await api.attempt("GET", "/health")
            if away and "restarting" not in marks:
                figures.health_while_down[outcome] = figures.health_while_down.get(outcome, 0) + 1
            await trio.sleep(1)

    def recovered() -> bool:
        back = marks.get("back")
        if back is None:
            return False
        # a service is back once every one of its operations answered 2xx again: a read the
        # gateway serves from its cache answers while the service itself is still away
        for service in ("users", "payments", "jobs", "contracts"):
            ops = {a.op for a in answers if a.service == service}
            firsts = [next((a.at for a in answers if a.service == service and a.op == op and a.at >= back
                            and a.outcome.startswith("2")), None) for op in ops]
            if not firsts or None in firsts:
                return False
            figures.recovered_after_s[service] = round(max(f for f in firsts if f is not None) - back, 2)
        # and no answer of the last STABLE_S seconds was an error: a service runs two worker
        # processes, and the second may find the server again a moment after the first
        now = trio.current_time() - t0
        return now - back >= STABLE_S and not any(
            a.at >= now - STABLE_S and not a.outcome.startswith("2") for a in answers)

    async with trio.open_nursery() as nursery:
        for acct in accounts:
            nursery.start_soon(lane, acct)
        nursery.start_soon(health)
        await trio.sleep(warm)
        marks["down"] = trio.current_time() - t0
        await trio.to_thread.run_sync(server.down)
        await trio.sleep(down)
        began = trio.current_time()
        marks["restarting"] = began - t0
        await trio.to_thread.run_sync(server.up)
        figures.restart_s = round(trio.current_time() - began, 1)
        marks["back"] = trio.current_time() - t0
        with trio.move_on_after(recover_within):
            while not recovered():
                await trio.sleep(0.2)
        marks["recovered"] = trio.current_time() - t0
        await trio.sleep(settle)
        nursery.cancel_scope.cancel()

    _summarise(figures, answers, marks, recover_within)
    figures.health_after = (await api.attempt("GET", "/health"))[1]
    if figures.health_after != "200":
        figures.failures.append(f"GET /health answers {figures.health_after} after recovery")
    await _settle_money(api, accounts, figures)
    await api.aclose()


def _summarise(figures: Figures, answers: list[Answer], marks: dict[str, float], recover_within: float) -> None:
    down, back, recovered = marks["down"], marks["back"], marks["recovered"]
    away = sorted((a for a in answers if down <= a.at < back), key=lambda a: -a.seconds)[:5]
    figures.slowest_while_down = [f"{a.service} {a.op}: {a.outcome} after {a.seconds:.1f} s (sent at +{a.at - down:.1f} s)"
                                  for a in away]
    for a in answers:
        phase = "before" if a.at < down else "down" if a.at < back else "restarted" if a.at < recovered else "after"
        counts = figures.phases.setdefault(phase, {}).setdefault(a.service, {})
        counts[a.outcome] = counts.get(a.outcome, 0) + 1
        if down <= a.at < back + 1:
            figures.slowest_while_down_s = round(max(figures.slowest_while_down_s, a.seconds), 2)
        if a.outcome == "hang":
            figures.hangs += 1
        if a.outcome == "hang" or a.seconds > LATE_S:
            figures.late += 1
        if a.outcome == "500":
            figures.internal_errors += 1
        if a.outcome == NO_RETRY_AFTER:
            figures.no_retry_after += 1
        if a.at >= back and not a.outcome.startswith("2"):
            figures.last_error_after_s[a.service] = round(max(figures.last_error_after_s.get(a.service, 0.0),
                                                              a.at - back), 2)
        if a.at >= recovered and not a.outcome.startswith("2"):
            figures.errors_after_recovery.append(f"{a.service} {a.op}: {a.outcome} at {a.at:.1f} s")
    if len(figures.recovered_after_s) < 4:
        figures.failures.append(f"not every service answered 2xx within {recover_within:.0f} s of the server's "
                                f"return: {figures.recovered_after_s}")
    if figures.hangs:
        figures.failures.append(f"{figures.hangs} requests waited {HANG_S:.0f} s or more for an answer")
    if figures.late:
        figures.failures.append(f"{figures.late} answers came after more than {LATE_S:.0f} s")
    if figures.internal_errors:
        figures.failures.append(f"{figures.internal_errors} answers were 500 (a server away is a 503)")
    if figures.no_retry_after:
        figures.failures.append(f"{figures.no_retry_after} answers were 503 without Retry-After")
    if figures.errors_after_recovery:
        figures.failures.append(f"{len(figures.errors_after_recovery)} errors after recovery")


async def _settle_money(api: Api, accounts: list[Account], figures: Figures) -> None:
    """Uncertain deposits sent again with their key; then balance and ledger = the deposits, once."""
    wrong = []
    total = Decimal(0)
    for acct in accounts:
        for key in acct.uncertain:
            figures.deposits_resent += 1
            await api.send("POST", f"{API}/payments/clients/me/wallet/deposit", 200, token=acct.token,
                           body={"amount": 1.00}, key=key)
            acct.counted += 1
        balance = Decimal(str((await api.get(f"{API}/payments/clients/me/wallet", acct.token))["balance"]))
        ledger = await api.get(f"{API}/payments/clients/me/wallet/transactions", acct.token)
        total += balance
        if balance != acct.counted or len(ledger) != acct.counted:
            wrong.append(f"balance {balance}, {len(ledger)} ledger rows, {acct.counted} deposits")
    figures.money_ok = not wrong
    figures.money = f"{sum(a.counted for a in accounts)} deposits of 1.00, wallets hold {total}"
    if wrong:
        figures.failures.append("deposits lost or applied twice: " + "; ".join(wrong))


def measure(target: str, *, down: float, lanes: int = 4, warm: float = 8.0, settle: float = 10.0,
            recover_within: float = 90.0) -> Figures:
    """A private ``target``, the system on it and the shared rest, the outage under load; the figures."""
    figures = Figures(target=target, down_s=down)
    with private(target) as server:
        try:
            # a private broker has only guest, not the dev node's role accounts (tests/conftest.py)
            env = {"WORKUP_AMQP_ACCOUNTS_DIR": ""} if target == "rabbitmq" else None
            with distributed(Servers.shared(**{server.name: server.url}), "relout", env=env) as system:
                trio.run(lambda: run(system.base_url, server, figures, lanes=lanes, warm=warm, down=down,
                                     settle=settle, recover_within=recover_within))
        finally:
            server.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.reliability.outages", description=__doc__.split("\n")[0])
    p.add_argument("target", choices=TARGETS)
    p.add_argument("--down", type=float, default=15.0, help="seconds the server stays away")
    p.add_argument("--lanes", type=int, default=4, help="clients looping over the mix")
    p.add_argument("--warm", type=float, default=8.0)
    p.add_argument("--settle", type=float, default=10.0, help="seconds of load after every service recovered")
    p.add_argument("--recover-within", type=float, default=90.0)
    a = p.parse_args(argv)
    figures = measure(a.target, down=a.down, lanes=a.lanes, warm=a.warm, settle=a.settle,
                      recover_within=a.recover_within)
    print(json.dumps(msgspec.to_builtins(figures), indent=1))
    print("OK" if figures.ok else "FAILED: " + "; ".join(figures.failures), file=sys.stderr)
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
