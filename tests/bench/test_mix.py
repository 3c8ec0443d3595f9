"""``workup bench mix``'s pure parts: the weights, the seeded draw, its own target; the progress
line's text."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from workup.bench.loadgen import Stats
from workup.bench.mix import WEIGHTS, Mix, parse_weights
from workup.bench.progress import Progress, line

from ._reports import make_report


def test_default_weights_are_mostly_reads() -> None:
    reads = sum(v for k, v in WEIGHTS.items() if k not in ("post job", "deposit"))
    assert reads / sum(WEIGHTS.values()) == 0.9


def test_parse_weights() -> None:
    assert parse_weights(None) == WEIGHTS
    assert parse_weights("search=40, post job=0") == {**WEIGHTS, "search": 40, "post job": 0}
    for bad in ("nope=1", "search", "search=-1", "search=x"):
        with pytest.raises(ValueError, match="--weights"):
            parse_weights(bad)
    with pytest.raises(ValueError, match="every weight is 0"):
        parse_weights(",".join(f"{k}=0" for k in WEIGHTS))


def test_draw_follows_the_weights_and_the_seed() -> None:
    mix = Mix(accounts=1, jobs=1, weights=WEIGHTS, seed=7)
    counts = Counter(mix.pick() for _ in range(20_000))
    for name, weight in WEIGHTS.items():
        assert counts[name] / 20_000 == pytest.approx(weight / 100, abs=0.015)
    again = Mix(accounts=1, jobs=1, weights=WEIGHTS, seed=7)
    other = Mix(accounts=1, jobs=1, weights=WEIGHTS, seed=8)
    same = Mix(accounts=1, jobs=1, weights=WEIGHTS, seed=7)
    first = [again.pick() for _ in range(50)]
    assert first == [same.pick() for _ in range(50)]
    assert first != [other.pick() for _ in range(50)]


def test_zero_weight_is_never_drawn() -> None:
    mix = Mix(accounts=1, jobs=1, weights=parse_weights("post job=0,deposit=0"), seed=1)
    assert not {"post job", "deposit"} & {mix.pick() for _ in range(5000)}


def test_target_p99_within_five_p50() -> None:
    mix = Mix(accounts=1, jobs=1, weights=WEIGHTS, seed=1)
    (check,) = mix.targets(make_report(latency_ms=10))
    assert check.met and check.value == 1.0
    empty = make_report(units=0)
    assert not mix.targets(empty)[0].met


def test_progress_line_and_quiet_off_a_terminal() -> None:
    stats = Stats(start=0.0)
    for i in range(30):
        stats.request("get", 0.002 if i % 10 else 0.050, None, now=i / 10)
    stats.request("get", 0.1, "HTTP 500", now=1.5)
    text = line(stats, now=3.2, started=31, unit="request")
    assert re.fullmatch(r"req/s 10 \| err 1 \(total 1\) \| p50 2(\.0\d)? ms \| p99 50(\.\d)? ms \| requests 31", text), text

    class NotATty:
        def isatty(self) -> bool:
            return False

    progress = Progress(10, "flow", stream=NotATty())   # type: ignore[arg-type]
    assert not progress.enabled
    progress(stats, 1.0, 1)
    progress.close()
