"""`workup scale`: the autoscaler, on CPU and queue depth, with hysteresis and cooldowns.

Providers: ``swarm`` (Docker Swarm services labelled ``swarm.autoscaler=true``, CPU from
Prometheus/cAdvisor, min/max from labels) and ``local`` (the ``workup worker`` supervisors on this
machine, CPU from psutil, processes changed with the signed ``set-processes``).
"""

from __future__ import annotations

import logging

import click
import trio

from ..logs import configure_logging
from ._options import server_options, settings_from, settings_options

log = logging.getLogger("workup.scale")
# the Engine API version spoken: Debian's dockerd 20.10 speaks up to 1.41, newer engines still accept it
DOCKER_API = "1.41"


@click.command(name="scale")
@click.option("--provider", type=click.Choice(["swarm", "local"]), default="swarm", show_default=True)
@click.option("--services", default="users,jobs,contracts,payments", show_default=True,
              help="local: comma-separated services to scale")
@click.option("--min-processes", type=click.IntRange(min=1), default=1, show_default=True, help="local")
@click.option("--max-processes", type=click.IntRange(min=1, max=64), default=4, show_default=True, help="local")
@settings_options("amqp_prefix", "prometheus_url", "host", "metrics_port")
@click.option("--cpu-window", type=click.FloatRange(min=1), default=60, show_default=True,
              help="swarm: seconds of cAdvisor samples each CPU figure averages")
@click.option("--interval", type=click.FloatRange(min=0.5), default=30, show_default=True, help="seconds between cycles")
@click.option("--cycles", type=click.IntRange(min=1), default=None, help="stop after this many cycles")
@click.option("--dry-run", is_flag=True, help="log decisions without scaling")
@click.option("--cpu-up", type=click.FloatRange(0, 1000, min_open=True), default=85, show_default=True,
              help="scale up above this CPU % of what a replica may use")
@click.option("--cpu-down", type=click.FloatRange(0, 1000, min_open=True), default=25, show_default=True,
              help="scale down below this CPU %")
@click.option("--queue-up", type=click.IntRange(min=1), default=100, show_default=True,
              help="scale up above this many queued messages per replica")
@click.option("--cooldown-up", type=click.FloatRange(min=0), default=30, show_default=True)
@click.option("--cooldown-down", type=click.FloatRange(min=0), default=120, show_default=True)
@click.option("--down-window", type=click.FloatRange(min=0), default=300, show_default=True,
              help="seconds of low load before scaling down")
@server_options
def command(provider: str, services: str, min_processes: int, max_processes: int, interval: float,
            cycles: int | None, dry_run: bool, cpu_up: float, cpu_down: float, queue_up: int, cooldown_up: float, cooldown_down: float,
            down_window: float, cpu_window: float, **flags: object) -> None:
    """Scale services on CPU and queue depth.

    Every cycle logs one line per service (or one line saying there is nothing to scale, or that a
    source could not be read and everything holds); with --metrics-port the same decisions are
    served at /metrics for Prometheus (workup_scale_desired_replicas, workup_scale_decisions_total).
    """
    from ..scale import Autoscaler, ScaleMetrics, ScalePolicy, run_autoscaler

    if cpu_down >= cpu_up:
        raise click.UsageError(f"--cpu-down ({cpu_down}) must be below --cpu-up ({cpu_up})")
    if min_processes > max_processes:
        raise click.UsageError(f"--min-processes ({min_processes}) is above --max-processes ({max_processes})")
    base = ScalePolicy(cpu_up=cpu_up / 100, cpu_down=cpu_down / 100, queue_up=queue_up,
                       cooldown_up=cooldown_up, cooldown_down=cooldown_down, down_window=down_window)
    settings = settings_from(**flags)
    configure_logging("scale", level=settings.log_level, fmt=settings.log_format)
    # httpx logs every Prometheus query at INFO: the promised one line per service per cycle would drown
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    metrics = ScaleMetrics()
    if settings.metrics_port:
        try:
            port = metrics.listen(settings.host, settings.metrics_port)
        except OSError as exc:
            raise click.UsageError(f"--metrics-port {settings.metrics_port}: {exc.strerror or exc}") from None
        log.info("metrics on http://%s:%d/metrics", settings.host, port)
    mode = " (dry run: nothing is changed)" if dry_run else ""

    if provider == "swarm":
        import docker

        from ..scale import PrometheusCpu, SwarmProvider, policy_from_labels
        try:   # a fixed API version: the client does not call the engine until the first cycle
            client = docker.from_env(version=DOCKER_API)
        except docker.errors.DockerException as exc:
            raise click.UsageError(f"Docker engine address (DOCKER_HOST): {exc}") from None
        cpu = PrometheusCpu(settings.prometheus_url, window=cpu_window)
        log.info("scaling Swarm services labelled swarm.autoscaler=true every %gs, CPU from Prometheus at %s%s",
                 interval, cpu.url, mode)
        scaler = Autoscaler(SwarmProvider(client, cpu), lambda svc: policy_from_labels(svc.labels, base),
                            dry_run=dry_run, metrics=metrics)
        trio.run(lambda: run_autoscaler(scaler, interval=interval, cycles=cycles))
        return

    names = [s.strip() for s in services.split(",") if s.strip()]
    bad = [n for n in names if not (n.isidentifier() and n.islower())]
    if not names or bad:
        raise click.UsageError(f"--services needs service names, got {services!r}")
    policy = ScalePolicy(minimum=min_processes, maximum=max_processes, cpu_up=base.cpu_up,
                         cpu_down=base.cpu_down, queue_up=queue_up, cooldown_up=cooldown_up,
                         cooldown_down=cooldown_down, down_window=down_window)

    async def main() -> None:
        from ..scale import LocalProvider
        from ..transport import AmqpTransport
        from ..settings import load_control_secret
        from ..transport.accounts import role_amqp_url

        async def scale_with(provider: LocalProvider) -> None:
            log.info("scaling the worker processes of %s every %gs between %d and %d%s", ", ".join(names),
                     interval, min_processes, max_processes, mode)
            scaler = Autoscaler(provider, lambda svc: policy, dry_run=dry_run, metrics=metrics)
            await run_autoscaler(scaler, interval=interval, cycles=cycles)

        if settings.amqp_url is None:   # the embedded workup up of --data-dir, through its admin channel
            from ..controller import AdminClient, admin_socket
            secret = load_control_secret(settings, create=False)
            if not secret or not admin_socket(settings.data_path).exists():
                raise click.UsageError(f"the local provider needs the broker (WORKUP_AMQP_URL or --amqp-url) or "
                                       f"a running workup up in --data-dir (none in {settings.data_path})")
            await scale_with(LocalProvider(AdminClient(admin_socket(settings.data_path)), secret, names))
            return
        secret = load_control_secret(settings, create=True)
        # it sends control messages (status, set-processes): only the controller's account may
        url = role_amqp_url(settings.amqp_url, "controller", settings.amqp_accounts_dir)
        async with AmqpTransport.connect(url, prefix=settings.amqp_prefix) as transport:
            await scale_with(LocalProvider(transport, secret, names))

    trio.run(main)
