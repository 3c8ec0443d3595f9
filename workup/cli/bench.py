"""``workup bench <scenario>``: each scenario is ``workup/bench/<scenario>.py`` with a click
``command``, imported only when it runs (so ``workup --help`` stays fast)."""

from __future__ import annotations

import importlib
import pkgutil

import click

__all__ = ["command"]


def _scenarios() -> list[str]:
    import workup.bench
    return sorted(m.name for m in pkgutil.iter_modules(workup.bench.__path__)
                  if not m.name.startswith("_"))


class _LazyBench(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return _scenarios()

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _scenarios():
            return None
        module = importlib.import_module(f"workup.bench.{name}")
        return getattr(module, "command", None)


@click.group(name="bench", cls=_LazyBench)
def command() -> None:
    """Benchmarks (each prints a table and saves JSON under perf/results/)."""
