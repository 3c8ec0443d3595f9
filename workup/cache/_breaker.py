"""The cache's circuit breaker as pure transitions (no I/O, no clock of its own: ``now`` is passed in).

Three modes, after Nygard's *Release It!*:

- ``closed``: every operation is tried; ``threshold`` failures in a row open the circuit.
- ``open``: every operation is refused at once (the caller treats it as a cache miss or a skipped
  write) until ``retry_after`` seconds have passed since it opened; then the next operation is
  admitted as the one probe and the circuit is ``half_open``.
- ``half_open``: the probe is in flight and everything else is refused; its success closes the
  circuit, its failure opens it again for another ``retry_after``. A probe that never reports (its
  caller was cancelled) is replaced by a new one once ``retry_after`` has passed since it started,
  so the circuit cannot stay half-open for good.

An answer that arrives while the circuit is open comes from an operation admitted before it
opened: it neither closes the circuit (only an admitted probe may) nor restarts the cool-down.
While half-open, any answer counts: the cache answering at all is what the probe asks.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["Breaker", "Mode", "admit", "succeeded", "failed"]

Mode = Literal["closed", "open", "half_open"]


class Breaker(msgspec.Struct, frozen=True):
    mode: Mode = "closed"
    failures: int = 0        # consecutive failures while closed
    since: float = 0.0       # open: when it opened; half_open: when the probe was admitted


def admit(state: Breaker, now: float, retry_after: float) -> tuple[bool, Breaker]:
    """May an operation starting at ``now`` go to the cache, and the state after it is admitted."""
    if state.mode == "closed":
        return True, state
    if now - state.since < retry_after:
        return False, state        # open and cooling down, or a probe in flight
    return True, Breaker("half_open", state.failures, now)


def succeeded(state: Breaker) -> Breaker:
    """An admitted operation answered."""
    if state.mode == "open":
        return state               # a late answer from before it opened: only a probe closes
    return Breaker()


def failed(state: Breaker, now: float, threshold: int = 1) -> Breaker:
    """An admitted operation failed or did not answer within the bound."""
    if state.mode == "open":
        return state               # a late failure from before it opened: keep the cool-down
    if state.mode == "half_open":
        return Breaker("open", state.failures, now)
    failures = state.failures + 1
    if failures >= threshold:
        return Breaker("open", failures, now)
    return Breaker("closed", failures, state.since)
