"""The circuit breaker's pure transitions, every mode against every event (workup/cache/_breaker.py)."""

import itertools

import pytest

from workup.cache._breaker import Breaker, admit, failed, succeeded

RETRY = 10.0
CLOSED = Breaker()
OPEN = Breaker("open", 1, 100.0)
PROBING = Breaker("half_open", 1, 100.0)


@pytest.mark.parametrize("state, now, admitted, after", [
    (CLOSED, 0.0, True, CLOSED),
    (Breaker("closed", 2, 0.0), 50.0, True, Breaker("closed", 2, 0.0)),
    (OPEN, 100.0, False, OPEN),                               # just opened
    (OPEN, 109.999, False, OPEN),                             # still cooling down
    (OPEN, 110.0, True, Breaker("half_open", 1, 110.0)),      # the probe
    (OPEN, 500.0, True, Breaker("half_open", 1, 500.0)),
    (PROBING, 100.0, False, PROBING),                         # one probe at a time
    (PROBING, 109.999, False, PROBING),
    (PROBING, 110.0, True, Breaker("half_open", 1, 110.0)),   # a probe that never reported is replaced
])
def test_admit(state, now, admitted, after):
    assert admit(state, now, RETRY) == (admitted, after)


@pytest.mark.parametrize("state, after", [
    (CLOSED, CLOSED),
    (Breaker("closed", 2, 0.0), CLOSED),      # a success resets the count of failures in a row
    (OPEN, OPEN),                             # a late answer does not close it: only a probe may
    (PROBING, CLOSED),                        # the probe answered
])
def test_succeeded(state, after):
    assert succeeded(state) == after


@pytest.mark.parametrize("state, threshold, after", [
    (CLOSED, 1, Breaker("open", 1, 200.0)),
    (CLOSED, 3, Breaker("closed", 1, 0.0)),
    (Breaker("closed", 2, 0.0), 3, Breaker("open", 3, 200.0)),
    (OPEN, 1, OPEN),                          # a late failure keeps the cool-down it is in
    (PROBING, 1, Breaker("open", 1, 200.0)),  # the probe failed: another full cool-down
    (PROBING, 3, Breaker("open", 1, 200.0)),
])
def test_failed(state, threshold, after):
    assert failed(state, 200.0, threshold) == after


def test_every_reachable_state_returns_to_closed_once_the_cache_answers():
    """From every state reachable in a few steps, a cache that answers again closes the circuit
    within one cool-down, and a cache that never answers keeps it from closing."""
    events = ("ok", "fail", "lost", "wait")   # lost: admitted, then cancelled before it reported
    seen = set()
    for path in itertools.product(events, repeat=5):
        state, now = Breaker(), 0.0
        for event in path:
            if event == "wait":
                now += RETRY
                continue
            admitted, state = admit(state, now, RETRY)
            if admitted and event != "lost":
                state = succeeded(state) if event == "ok" else failed(state, now)
        seen.add(state.mode)
        # the cache answers from now on: after at most one cool-down an operation is admitted and closes it
        admitted, probe = admit(state, now + RETRY, RETRY)
        assert admitted and succeeded(probe) == Breaker()
        # or it never answers: the probe reopens it, and nothing else is admitted until the next cool-down
        reopened = failed(probe, now + RETRY)
        assert reopened.mode == "open"
        assert admit(reopened, now + RETRY + RETRY / 2, RETRY) == (False, reopened)
    assert seen == {"closed", "open", "half_open"}
