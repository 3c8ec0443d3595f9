"""The benchmark harness's pure parts and ``workup bench amqp``'s argument handling (the
benchmark itself is run by hand: ``workup bench amqp``; see perf/README.md)."""

from __future__ import annotations

import math
import subprocess
import sys

from workup.bench import _harness as H
from workup.bench.amqp import ratios


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert H.percentile(values, 50) == 50.0
    assert H.percentile(values, 99) == 99.0
    assert H.percentile(values, 100) == 100.0
    assert H.percentile([7.0], 99) == 7.0
    assert math.isnan(H.percentile([], 50))


def test_recorder_counts_only_the_measure_window() -> None:
    rec = H.Recorder(warmup=10.0, duration=2.0)
    start = rec.start
    rec.record(start - 1.0, start - 0.5)  # warm-up: ignored
    rec.record(start - 0.001, start + 0.001)  # completes inside: counts
    rec.record(start + 0.5, start + 0.503)
    rec.record(start + 1.9, start + 2.5)  # completes after the window: ignored
    rec.error(start + 1.0)
    result = rec.result("x", 4)
    assert (result.calls, result.errors, result.calls_per_s) == (2, 1, 1.0)
    assert result.p50_ms == 2.0 and result.p99_ms == 3.0


def test_ratios() -> None:
    rows = [{"name": "ours", "in_flight": 64, "calls_per_s": 8000.0, "p50_ms": 5.0},
            {"name": "aiormq", "in_flight": 64, "calls_per_s": 2000.0, "p50_ms": 20.0},
            {"name": "ours", "in_flight": 1, "calls_per_s": 1500.0, "p50_ms": 0.5},
            {"name": "aio-pika", "in_flight": 1, "calls_per_s": 900.0, "p50_ms": 1.0}]
    assert ratios(rows) == {"ours/aiormq at 64": 4.0,
                            "ours p50 / aio-pika p50 at 1 (at most)": 0.5}


def test_table() -> None:
    text = H.table(["peer", "calls/s"], [("ours", 12345.6), ("aiormq", 2.5)])
    assert text.splitlines()[2] == "| ours   |  12,346 |"
    assert text.splitlines()[3] == "| aiormq |    2.50 |"


def test_bad_arguments_exit_2() -> None:
    for args, says in ((["--peers", "nameko"], "peers must be among"), (["--in-flight", "0"], "positive"),
                       (["--in-flight", "x"], "Invalid value for --in-flight: a comma-separated list"),
                       (["--amqp-url", "http://x"], "Invalid value for --amqp-url: unsupported AMQP URL scheme")):
        proc = subprocess.run([sys.executable, "-m", "workup", "bench", "amqp", *args],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and says in proc.stderr


def test_unreachable_broker_is_one_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "workup", "bench", "amqp", "--amqp-url",
                           "amqp://guest:guest@127.0.0.1:1/"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "Error: RabbitMQ is not reachable at 127.0.0.1:1 ([Errno 111] Connection refused)"]
