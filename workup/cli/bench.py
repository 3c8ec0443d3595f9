"""``workup bench <scenario>``: each scenario is a module of ``workup/bench/`` with a click
``command``, imported only when it runs (so ``workup --help`` stays fast)."""

from __future__ import annotations

import importlib

import click

__all__ = ["command", "SCENARIOS"]

# name -> (module under workup.bench, one line for the list); the other modules there are the
# load generator, reports and helpers, not commands.
SCENARIOS = {
    "amqp": ("amqp", "RPC over RabbitMQ: ours vs aiormq vs aio-pika"),
    "rpc": ("rpc", "the worker runtime's RPC round trip, bare and full"),
    "gateway": ("gateway", "cached GET /users/me through the gateway vs bare quart-trio"),
    "users": ("users", "login and cached reads of the users service"),
    "jobs": ("jobs", "jobs and contracts services on their real stores"),
    "payments": ("payments", "pay and withdraw on hot and spread wallets"),
    "flow": ("flow", "the hire-to-payout story per virtual user, closed or open loop"),
    "mix": ("mix", "a weighted marketplace mix, mostly reads, on a seeded data set"),
    "compare": ("compare", "ratio table of two reports; exit 1 when B is worse beyond a tolerance"),
}


class _LazyBench(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SCENARIOS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SCENARIOS:
            return None
        try:
            module = importlib.import_module(f"workup.bench.{SCENARIOS[name][0]}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] == "workup":
                raise
            raise click.ClickException(f"workup bench {name} needs {exc.name!r} from the 'bench' extra: "
                                       f"pip install -e '.[bench]' in the project (or pip install "
                                       f"'workup[bench]')") from None
        return getattr(module, "command", None)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Benchmarks"):
            formatter.write_dl([(name, line) for name, (_, line) in SCENARIOS.items()])


@click.group(name="bench", cls=_LazyBench)
def command() -> None:
    """Benchmarks: the micro-benchmarks print a table and save JSON under perf/results/; the load
    benches (flow, mix) write JSON, Markdown and PNG charts to perf/results/<UTC timestamp>/."""
