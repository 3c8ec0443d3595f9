"""Observe → decide → act, every ``interval`` seconds: one log line per service per cycle, and the
same decision as metrics (:class:`ScaleMetrics`).

A cycle whose sources cannot be read (the engine, Prometheus, the broker: a provider raises
:class:`Unavailable`) is one log line and a hold: nothing is scaled on missing data.
"""

from __future__ import annotations

import logging
from typing import Callable, Generic, Protocol, Sequence, TypeVar

import trio

from ._metrics import ScaleMetrics
from ._policy import Decision, Observation, ScalePolicy, ScaleState, decide

__all__ = ["ScaledService", "Provider", "Unavailable", "Autoscaler", "run_autoscaler"]

log = logging.getLogger("workup.scale")


def _one_line(exc: object) -> str:
    """``exc`` as one log line: driver errors (requests, httpx) nest several lines of context."""
    return " ".join(str(exc).split()) or type(exc).__name__


class Unavailable(Exception):
    """A source the provider needs could not be read this cycle (``source`` names it)."""

    def __init__(self, source: str, detail: object) -> None:
        self.source, self.detail = source, _one_line(detail)
        super().__init__(f"{source} unavailable: {self.detail}")


class ScaledService(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> dict[str, str]: ...


S = TypeVar("S", bound=ScaledService)


class Provider(Protocol[S]):
    @property
    def scope(self) -> str: ...          # what it looks for, for "nothing to scale: no <scope>"
    async def services(self) -> Sequence[S]: ...
    async def observe(self, services: Sequence[S]) -> dict[str, Observation]: ...
    async def scale(self, name: str, replicas: int) -> None: ...


class Autoscaler(Generic[S]):
    """Keeps each service's :class:`ScaleState` between cycles."""

    def __init__(self, provider: Provider[S], policy_for: Callable[[S], ScalePolicy], *,
                 dry_run: bool = False, metrics: ScaleMetrics | None = None) -> None:
        self.provider = provider
        self.policy_for = policy_for
        self.dry_run = dry_run
        self.metrics = metrics or ScaleMetrics()
        self.states: dict[str, ScaleState] = {}

    async def cycle(self) -> dict[str, Decision]:
        try:
            services = list(await self.provider.services())
            observations = await self.provider.observe(services) if services else {}
        except Unavailable as exc:
            self.metrics.unavailable(exc.source)
            log.warning("holding every service this cycle: %s", exc)
            return {}
        if not services:
            log.info("nothing to scale: no %s", self.provider.scope)
            return {}
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
            before = self.states.get(svc.name, ScaleState())
            decision, self.states[svc.name] = decide(policy, obs, before)
            decisions[svc.name] = decision
            self.metrics.decided(svc.name, obs, decision)
            util = "?" if obs.utilisation is None else f"{obs.utilisation:.0%}"
            log.info("%s: replicas=%d cpu=%s queue=%s -> %s %d (%s)%s", svc.name, obs.replicas, util,
                     "?" if obs.queue_depth is None else obs.queue_depth, decision.direction,
                     decision.replicas, decision.reason, " [dry run]" if self.dry_run else "")
            if decision.direction != "hold" and not self.dry_run:
                try:
                    await self.provider.scale(svc.name, decision.replicas)
                except Unavailable as exc:   # not done: no cooldown starts for a change that did not happen
                    self.states[svc.name] = before
                    self.metrics.unavailable(exc.source)
                    log.warning("%s: not scaled to %d: %s", svc.name, decision.replicas, exc)
        return decisions


async def run_autoscaler(scaler: Autoscaler[S], *, interval: float, cycles: int | None = None) -> None:
    done = 0
    while cycles is None or done < cycles:
        try:
            await scaler.cycle()
        except Exception as exc:  # one failed cycle must not stop scaling
            log.error("autoscaler cycle failed: %s", _one_line(exc))
        done += 1
        if cycles is None or done < cycles:
            await trio.sleep(interval)
