"""``workup bench corpus``'s pure parts: how many jobs match a word, the curve's targets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workup.bench.corpus import WORDS, corpus_targets, matching
from workup.bench.loadgen import Latency
from workup.bench.report import CorpusPoint

from ..conftest import service_url


@pytest.mark.parametrize("size", [1, 15, 16, 17, 200, 1000, 10_000])
def test_matching_counts_every_job_once(size: int) -> None:
    assert sum(matching(size, i) for i in range(len(WORDS))) == size
    assert matching(size, 0) == len(range(0, size, len(WORDS)))


def _lat(p50: float) -> Latency:
    return Latency(count=10, mean_ms=p50, p50_ms=p50, p90_ms=p50, p99_ms=p50, p999_ms=p50, max_ms=p50)


def _point(size: int, search: float, get: float, errors: int = 0) -> CorpusPoint:
    return CorpusPoint(size=size, steps={"search": _lat(search), "get job": _lat(get), "browse": _lat(1)}, errors=errors)


@pytest.mark.parametrize("search, get, errors, met", [
    ((10, 15), (2, 2.4), 0, [True, True, True]),      # at the limits
    ((10, 15.1), (2, 2), 0, [True, False, True]),
    ((10, 10), (2, 2.5), 0, [True, True, False]),     # get job 25 % slower
    ((10, 10), (2, 1.5), 0, [True, True, False]),     # or 25 % faster: not flat either
    ((10, 10), (2, 2), 3, [False, True, True]),
])
def test_corpus_targets(search: tuple[float, float], get: tuple[float, float], errors: int, met: list[bool]) -> None:
    points = [_point(10_000, search[0], get[0]), _point(100_000, (search[0] + search[1]) / 2, 2),
              _point(1_000_000, search[1], get[1], errors)]
    checks = corpus_targets(points)
    assert [c.met for c in checks] == met
    assert "1,000,000 / at 10,000" in checks[1].target


def test_one_size_has_no_curve_target() -> None:
    assert corpus_targets([_point(10, 1, 1)]) == []


def _corpus_run(tmp_path: Path, env: dict[str, str]) -> dict:
    proc = subprocess.run([sys.executable, "-m", "workup", "bench", "corpus", "--sizes", "40,120", "--duration", "1.5",
                           "--warmup", "0.5", "--users", "2", "--out", str(tmp_path)],
                          cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "corpus.json").read_text())
    assert [p["size"] for p in report["corpus"]] == [40, 120]
    assert all(p["errors"] == 0 and set(p["steps"]) == {"search", "browse", "get job"} for p in report["corpus"]), \
        [s["errors"] for s in report["steps"]]
    assert all(p["seed_jobs_per_s"] > 0 for p in report["corpus"])
    assert (tmp_path / "corpus-corpus.png").stat().st_size > 5000
    assert "## Latency against corpus size" in (tmp_path / "corpus.md").read_text()
    return report


def _no_workup_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("WORKUP_")}


@pytest.mark.timeout(300)
def test_corpus_run_on_sqlite(tmp_path: Path) -> None:
    """A short real run: two sizes, the curve table and chart, every read answered right."""
    assert _corpus_run(tmp_path, _no_workup_env())["environment"]["jobs_store"] == "sqlite"


@pytest.mark.services
@pytest.mark.timeout(300)
def test_corpus_run_on_cassandra(tmp_path: Path) -> None:
    """The same on Cassandra: the jobs are written into the keyspaces the system reads (its
    own, dropped after the run)."""
    env = dict(_no_workup_env(), WORKUP_CASSANDRA_HOSTS=service_url("cassandra"))
    assert _corpus_run(tmp_path, env)["environment"]["jobs_store"] == "cassandra"
