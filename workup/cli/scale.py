"""`workup scale`: the autoscaler (Docker Swarm services, CPU from Prometheus, queue depth)."""

from __future__ import annotations

import logging

import click
import trio


@click.command(name="scale")
@click.option("--provider", type=click.Choice(["swarm"]), default="swarm", show_default=True,
              help="what to scale: Swarm services labelled swarm.autoscaler=true")
@click.option("--prometheus-url", envvar="WORKUP_PROMETHEUS_URL", default="http://127.0.0.1:9090",
              show_default=True, help="Prometheus with cAdvisor metrics (WORKUP_PROMETHEUS_URL)")
@click.option("--interval", type=click.FloatRange(min=1), default=30, show_default=True, help="seconds between cycles")
@click.option("--once", is_flag=True, help="run one cycle and exit")
@click.option("--dry-run", is_flag=True, help="log decisions without scaling")
@click.option("--cpu-up", type=click.FloatRange(0, 100, min_open=True), default=85, show_default=True,
              help="scale up above this CPU %% of a replica's limit")
@click.option("--cpu-down", type=click.FloatRange(0, 100, min_open=True), default=25, show_default=True,
              help="scale down below this CPU %%")
@click.option("--queue-up", type=click.IntRange(min=1), default=100, show_default=True,
              help="scale up above this many queued messages per replica")
@click.option("--cooldown-up", type=click.FloatRange(min=0), default=30, show_default=True)
@click.option("--cooldown-down", type=click.FloatRange(min=0), default=120, show_default=True)
@click.option("--down-window", type=click.FloatRange(min=0), default=300, show_default=True,
              help="seconds of low load before scaling down")
def command(provider: str, prometheus_url: str, interval: float, once: bool, dry_run: bool, cpu_up: float,
            cpu_down: float, queue_up: int, cooldown_up: float, cooldown_down: float, down_window: float) -> None:
    """Scale services on CPU and queue depth, with hysteresis and cooldowns."""
    import docker

    from ..scale import ScalePolicy
    from ..scale._loop import Autoscaler, run_autoscaler
    from ..scale._swarm import PrometheusCpu, SwarmProvider, policy_from_labels

    if cpu_down >= cpu_up:
        raise click.UsageError(f"--cpu-down ({cpu_down}) must be below --cpu-up ({cpu_up})")
    base = ScalePolicy(cpu_up=cpu_up / 100, cpu_down=cpu_down / 100, queue_up=queue_up,
                       cooldown_up=cooldown_up, cooldown_down=cooldown_down, down_window=down_window)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise click.ClickException(f"cannot reach the Docker engine: {exc}") from None
    scaler = Autoscaler(SwarmProvider(client, PrometheusCpu(prometheus_url)),
                        lambda svc: policy_from_labels(svc.labels, base), dry_run=dry_run)
    trio.run(lambda: run_autoscaler(scaler, interval=interval, cycles=1 if once else None))
