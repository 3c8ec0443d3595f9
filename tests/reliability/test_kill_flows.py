"""Figure 1 of docs/reliability.md, shorter: 10 hire-to-payout flows with worker children SIGKILLed
at random and right after accept, evaluate and pay (``python -m tests.reliability.kill_flows`` runs 100)."""

from __future__ import annotations

import trio

from .kill_flows import measure


async def test_killed_workers_lose_nothing_and_apply_nothing_twice() -> None:
    figures = await trio.to_thread.run_sync(lambda: measure(flows=10, concurrency=5, kill_every=1.5, targeted=0.5,
                                                            seed=7))
    assert figures.failures == [], figures.failures
    assert figures.listed_twice == [], figures.listed_twice   # index rows keyed by a time every attempt agrees on
    assert figures.completed == 10
    assert figures.kills >= 5, figures.kills                 # the killer really killed
    assert figures.money_conserved, (figures.deposits, figures.withdrawals, figures.wallets)
