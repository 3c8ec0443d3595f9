"""Observe → decide → act, every ``interval`` seconds, one log line per decision."""

from __future__ import annotations

import logging
from typing import Any, Callable, Protocol, Sequence

import trio

from ._policy import Decision, Observation, ScalePolicy, ScaleState, decide

__all__ = ["Provider", "Autoscaler", "run_autoscaler"]

log = logging.getLogger("workup.scale")


class Provider(Protocol):
    async def services(self) -> Sequence[Any]: ...               # each has .name and .labels
    async def observe(self, services: Sequence[Any]) -> dict[str, Observation]: ...
    async def scale(self, name: str, replicas: int) -> None: ...


class Autoscaler:
    """Keeps each service's :class:`ScaleState` between cycles."""

    def __init__(self, provider: Provider, policy_for: Callable[[Any], ScalePolicy], *,
                 dry_run: bool = False) -> None:
        self.provider = provider
        self.policy_for = policy_for
        self.dry_run = dry_run
        self.states: dict[str, ScaleState] = {}

    async def cycle(self) -> dict[str, Decision]:
        services = list(await self.provider.services())
        observations = await self.provider.observe(services)
        decisions: dict[str, Decision] = {}
        for svc in services:
            obs = observations.get(svc.name)
            if obs is None:
                continue
            try:
                policy = self.policy_for(svc)
            except ValueError as exc:
                log.warning("skipping %s: %s", svc.name, exc)
                continue
            decision, self.states[svc.name] = decide(policy, obs, self.states.get(svc.name, ScaleState()))
            decisions[svc.name] = decision
            util = "?" if obs.utilisation is None else f"{obs.utilisation:.0%}"
            log.info("%s: replicas=%d cpu=%s queue=%s -> %s %d (%s)%s", svc.name, obs.replicas, util,
                     "?" if obs.queue_depth is None else obs.queue_depth, decision.direction,
                     decision.replicas, decision.reason, " [dry run]" if self.dry_run else "")
            if decision.direction != "hold" and not self.dry_run:
                await self.provider.scale(svc.name, decision.replicas)
        return decisions


async def run_autoscaler(scaler: Autoscaler, *, interval: float, cycles: int | None = None) -> None:
    done = 0
    while cycles is None or done < cycles:
        try:
            await scaler.cycle()
        except Exception as exc:  # one failed cycle (engine or broker away) must not stop scaling
            log.error("autoscaler cycle failed: %s", exc)
        done += 1
        if cycles is None or done < cycles:
            await trio.sleep(interval)
