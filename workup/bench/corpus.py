"""``workup bench corpus``: search, browse and get-job latency against the number of jobs, one
command for the whole curve (issue 11's first scale curve).

One system is started (``workup up``; the jobs store on Cassandra when ``WORKUP_CASSANDRA_HOSTS``
is set, in keyspaces of its own that are dropped at the end, else SQLite). For each size of
``--sizes``, in increasing order, the corpus is grown to that many jobs *in bulk*, straight into
the jobs store with the service's own ``JobsStore.create_job`` (index rows and all; not through
the API, which would take hours at a million), then the three reads run closed loop:

- search ``corpus <word>``: both words must occur; ``<word>`` is one of 16, so about 1/16 of the
  jobs match and the scan driven by the rarer term cannot stop at the first rows;
- browse: ``GET /jobs?pageLimit=20`` (newest first, the first page);
- get job: a job drawn at random from the whole corpus (mostly cache misses).

Targets (``--check``, issue 11): search p50 at the largest size at most 1.5 × its p50 at the
smallest; get job p50 flat within 20 %.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from typing import Any

import click
import msgspec
import trio

from . import report as R
from .flow import API, call
from .http import Client
from .loadgen import Recorder
from .runner import LoadOptions, load_options, measure_once
from .system import System, start_embedded

__all__ = ["command", "Corpus", "WORDS", "corpus_targets", "matching"]

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
         "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa")
SEARCH_GROWTH, GET_FLATNESS = 1.5, 0.2


class Corpus:
    """The reads of one size; ``grow`` adds jobs up to a size first."""

    name = "corpus"
    unit = "request"

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.job_ids: list[str] = []
        self.http: Client | None = None
        self.size = 0
        self.token: str | None = None      # a client's, for get job (any role may read a job)

    def settings(self) -> dict[str, object]:
        return {"size": self.size}

    async def grow(self, system: System, size: int, keyspace_prefix: str, concurrency: int = 8,
                   chunk: int = 500) -> float:
        """Jobs ``len(job_ids)`` to ``size - 1`` written straight into the jobs store of
        ``system`` (its data directory; on Cassandra, its keyspace prefix) in bulk: ``chunk``
        jobs at a time through ``JobsStore.seed_jobs`` (unlogged batches), ``concurrency``
        chunks in flight. Returns the jobs written per second."""
        from ..services.jobs.search import job_terms
        from ..services.jobs.store import TABLES, JobsStore, StoredJob
        from ..settings import load_settings
        from ..storage import opened_store

        assert system.data_dir is not None
        settings = load_settings({"data_dir": os.path.join(system.data_dir, "data"),
                                  "cassandra_keyspace_prefix": keyspace_prefix})
        client = secrets.token_hex(16)
        first = len(self.job_ids)
        todo = iter(range(first, size, chunk))
        created: list[str] = []

        async def writer(store: JobsStore) -> None:
            for start in todo:
                jobs = []
                for i in range(start, min(start + chunk, size)):
                    word = WORDS[i % len(WORDS)]
                    ms = int(time.time() * 1000)
                    # the description repeats the title: words of its own in every job would be
                    # index partitions as big as ``*`` that no read of this bench uses (7 rows
                    # a job instead of 13)
                    title = f"Corpus {word} job {i}"
                    job = StoredJob(id=secrets.token_hex(16), client_id=client, title=title,
                                    description=title, skills=[word], created_ms=ms, updated_ms=ms)
                    jobs.append((job, sorted(job_terms(job.title, job.description, job.skills))))
                await store.seed_jobs(jobs)
                created.extend(job.id for job, _ in jobs)

        began = time.monotonic()
        async with opened_store(settings, "jobs", TABLES, JobsStore) as store:
            async with trio.open_nursery() as nursery:
                for _ in range(concurrency):
                    nursery.start_soon(writer, store)
        self.job_ids += created
        self.size = size
        return (size - first) / max(1e-9, time.monotonic() - began)

    async def prepare(self, base_url: str, users: int) -> None:
        if self.http is None:
            self.http = Client(base_url)

    async def aclose(self) -> None:
        pass   # the client lives across the sizes; closed by the command

    def run(self, user: int, rec: Recorder) -> Any:
        http = self.http
        assert http is not None
        kind = self.random.choice(("search", "browse", "get job"))
        if kind == "search":
            index = self.random.randrange(len(WORDS))
            full = min(20, matching(self.size, index))
            return call(http, rec, kind, "GET", f"{API}/jobs/search?query=corpus+{WORDS[index]}&pageLimit=20", 200,
                        check=lambda b: None if isinstance(b, dict) and len(b.get("jobs", [])) == full
                        else f"expected {full} jobs for {WORDS[index]!r}")
        if kind == "browse":
            page = min(20, self.size)
            return call(http, rec, kind, "GET", f"{API}/jobs?pageLimit=20", 200,
                        check=lambda b: None if isinstance(b, dict) and len(b.get("jobs", [])) == page
                        else f"expected {page} jobs")
        job_id = self.random.choice(self.job_ids)
        return call(http, rec, kind, "GET", f"{API}/jobs/{job_id}", 200, token=self.token,
                    check=lambda b: None if isinstance(b, dict) and b.get("id") == job_id else "another job")

    def targets(self, report: R.RunReport) -> list[R.Check]:
        return []   # judged on the whole curve (corpus_targets)


def matching(size: int, index: int) -> int:
    """Jobs of a corpus of ``size`` that have ``WORDS[index]`` (job ``i`` has word ``i % 16``)."""
    return 0 if index >= size else (size - 1 - index) // len(WORDS) + 1


def corpus_targets(points: list[R.CorpusPoint]) -> list[R.Check]:
    """Search p50 growth and get-job flatness from the smallest to the largest size."""
    if len(points) < 2:
        return []   # the common checks cover the one run
    first, last = points[0].steps, points[-1].steps

    def ratio(step: str) -> float | None:
        a, b = first.get(step), last.get(step)
        if a is None or b is None or not a.p50_ms or b.p50_ms is None:
            return None
        return round(b.p50_ms / a.p50_ms, 2)

    search, get = ratio("search"), ratio("get job")
    failed = sum(p.errors for p in points)
    return [
        R.Check(target="failed requests at every size", value=failed, limit=0, met=failed == 0),
        R.Check(target=f"search p50 at {points[-1].size:,} / at {points[0].size:,} jobs", value=search,
                limit=SEARCH_GROWTH, met=search is not None and search <= SEARCH_GROWTH),
        R.Check(target=f"get job p50 at {points[-1].size:,} / at {points[0].size:,} jobs (flat within 20 %)",
                value=get, limit=1 + GET_FLATNESS,
                met=get is not None and 1 - GET_FLATNESS <= get <= 1 + GET_FLATNESS),
    ]


async def _register(base_url: str) -> str:
    http = Client(base_url)
    try:
        body = await call(http, Recorder(None, measured=False), "register", "POST", f"{API}/users/clients/register",
                          201, body={"email": f"corpus-{secrets.token_hex(6)}@example.com",
                                     "password": "bench-pass-1", "clientName": "Corpus"})
        return str(body["authToken"])
    finally:
        await http.aclose()


@click.command(name="corpus")
@click.option("--sizes", default="1000,10000", show_default=True,
              help="corpus sizes, increasing (the issue's curve: 10000,100000,1000000 on a quiet machine)")
@click.option("--seed", type=int, default=1, show_default=True)
@load_options(users=8, duration=10.0, warmup=1.0, p99_bound_ms=500)
def command(sizes: str, seed: int, **options: Any) -> None:
    """Search, browse and get-job latency against the number of jobs (seeded in bulk)."""
    try:
        wanted = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        wanted = []
    if not wanted or wanted != sorted(set(wanted)) or wanted[0] < 1:
        raise click.BadParameter("increasing whole numbers separated by commas", param_hint="--sizes")
    opts = msgspec.convert(options, LoadOptions)
    if opts.url or opts.rate or opts.gateways or opts.workers:
        raise click.UsageError("workup bench corpus starts its own workup up and runs closed loop "
                               "(--url, --rate, --gateways and --workers do not apply)")
    scenario = Corpus(seed)
    prefix = f"benchcorpus{secrets.token_hex(3)}"
    hosts = os.environ.get("WORKUP_CASSANDRA_HOSTS")
    points: list[R.CorpusPoint] = []
    report: R.RunReport | None = None
    try:
        with start_embedded(extra_env={"WORKUP_CASSANDRA_KEYSPACE_PREFIX": prefix}) as system:
            scenario.token = trio.run(_register, system.base_url)
            for size in wanted:
                click.echo(f"growing the corpus to {size:,} jobs ...", err=True)
                rate = trio.run(scenario.grow, system, size, prefix)
                click.echo(f"  seeded at {rate:,.0f} jobs/s", err=True)
                report = measure_once(system, scenario, opts)
                points.append(R.CorpusPoint(size=size, seed_jobs_per_s=round(rate), steps={s.name: s.latency for s in report.steps},
                                            errors=report.errors + sum(report.unit_errors.values())))
            if scenario.http is not None:
                trio.run(scenario.http.aclose)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if hosts:
            from .jobs import _drop_keyspaces
            _drop_keyspaces(hosts, prefix)
    assert report is not None
    report.corpus = points
    report.environment["jobs_store"] = "cassandra" if hosts else "sqlite"
    report.checks += corpus_targets(points)
    R.finish(report, opts.out, check=opts.check)
