"""``workup bench <scenario>``: each scenario is a module of ``workup/bench/`` with a click
``command``, imported only when it runs (so ``workup --help`` stays fast)."""

from __future__ import annotations

import importlib

import click

__all__ = ["command", "SCENARIOS", "missing_modules"]

# name (= its module under workup.bench) -> (one line for the list, the modules of the bench
# extra it needs); the other modules there are the load generator, reports and helpers.
_LOAD = ("hdrh", "matplotlib", "tqdm")
SCENARIOS = {
    "amqp": ("RPC over RabbitMQ: ours vs aiormq vs aio-pika", ("aiormq", "aio_pika")),
    "rpc": ("the worker runtime's RPC round trip, bare and full", ()),
    "gateway": ("cached GET /users/me through the gateway vs bare quart-trio", ()),
    "users": ("login and cached reads of the users service", ()),
    "jobs": ("jobs and contracts services on their real stores", ()),
    "payments": ("pay and withdraw on hot and spread wallets", ()),
    "flow": ("the hire-to-payout story per virtual user, closed or open loop", _LOAD),
    "mix": ("a weighted marketplace mix, mostly reads, on a seeded data set", _LOAD),
    "corpus": ("search, browse and get job against corpus size (jobs seeded in bulk)", _LOAD),
    "compare": ("ratio table of two reports; exit 1 when B is worse beyond a tolerance", ()),
}


def missing_modules(names: tuple[str, ...]) -> list[str]:
    import importlib.util
    return [n for n in names if importlib.util.find_spec(n) is None]


class _LazyBench(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SCENARIOS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SCENARIOS:
            return None
        _, needs = SCENARIOS[name]
        missing = missing_modules(needs)
        if missing:
            # scripts/up installs the base only; say which extra brings the peers
            raise click.ClickException(
                f"workup bench {name} needs {', '.join(missing)} from the 'bench' extra: "
                f"pip install -e '.[bench]' in the project (or pip install 'workup[bench]')")
        return getattr(importlib.import_module(f"workup.bench.{name}"), "command", None)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Benchmarks"):
            formatter.write_dl([(name, line) for name, (line, _) in SCENARIOS.items()])


@click.group(name="bench", cls=_LazyBench)
def command() -> None:
    """Benchmarks: the micro-benchmarks print a table and save JSON under perf/results/; the load
    benches (flow, mix) write JSON, Markdown and PNG charts to perf/results/<UTC timestamp>/."""
