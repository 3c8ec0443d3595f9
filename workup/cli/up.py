"""``workup up``: the whole system in one process, embedded defaults for whatever is not configured.

The gateway, every service that exists (users, jobs, contracts, payments) and the media server.
Services run on the in-process transport (on RabbitMQ when ``WORKUP_AMQP_URL`` is set), their
stores are SQLite files in the data directory unless a server URL is set, the cache is in process
unless ``WORKUP_REDIS_URL`` is set. Keys and upload credentials that are not given are generated
once into the data directory. Ctrl-C / SIGTERM stops everything, bounded.
"""

from __future__ import annotations

import logging
import sys
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator

import click

from ..settings import Settings, ensure_secret, load_control_secret
from ..logs import configure_logging
from ._options import server_options, settings_from, settings_options

if TYPE_CHECKING:
    import trio

    from ..transport.local import LocalTransport
    from ..transport.rabbitmq import AmqpTransport

SERVICES = ("users", "jobs", "contracts", "payments")


@click.command(name="up")
@settings_options("host", "port", "media_port", "amqp_prefix", "request_timeout", "metrics_port")
@server_options
def command(**flags: object) -> None:
    """Start the gateway, the services and the media server; print the URLs once they answer."""
    settings = settings_from(**flags)
    try:
        settings.data_path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.UsageError(f"data directory {settings.data_dir}: {exc.strerror}") from None
    configure_logging("up", level=settings.log_level, fmt=settings.log_format)
    _check_ports(settings)   # a port in use stops us before any service has started
    # our own readiness probes go through httpx: keep its per-request INFO lines out of the log
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    if not (settings.upload_user and settings.upload_password):
        import msgspec
        settings = msgspec.structs.replace(
            settings, upload_user=settings.upload_user or "workup",
            upload_password=settings.upload_password or ensure_secret(settings.data_path, "upload.password", 18))
    from ..gateway import run_until_stopped
    run_until_stopped(run_system, settings)


def _check_ports(settings: Settings) -> None:
    from hypercorn.config import Config

    from .._listening import bind_address, listen

    ports = [("media server", settings.media_port)]
    if _api_socket_fd is None:   # else --gateway-processes has bound the API port already
        ports.insert(0, ("gateway", settings.port))
    for what, port in ports:
        if port:   # 0: any free port, nothing to check
            config = Config()
            config.bind = [bind_address(settings.host, port)]
            sockets, _, _ = listen(config, what)   # SettingsError: one line, exit 2
            for sock in sockets.insecure_sockets:
                sock.close()


def available_services() -> list[str]:
    from ..runtime import UnknownService, load_service
    names = []
    for name in SERVICES:
        try:
            load_service(name)
        except UnknownService:
            continue
        names.append(name)
    return names


@asynccontextmanager
async def open_transport(settings: Settings) -> AsyncIterator[LocalTransport | AmqpTransport]:
    from ..transport import AmqpTransport, LocalTransport
    from ..transport.identity import load_identity
    # this process is gateway and services at once: both keys (made in the data dir if unset)
    identity = load_identity(settings, "both", create=True)
    if settings.amqp_url is None:
        yield LocalTransport(identity)
        return
    async with AmqpTransport.connect(settings.amqp_url, prefix=settings.amqp_prefix, name="workup-up",
                                     identity=identity) as transport:
        yield transport


async def wait_answering(urls: list[str], *, timeout: float = 30.0) -> None:
    import httpx
    import trio
    async with httpx.AsyncClient(timeout=2) as client:
        with trio.fail_after(timeout):
            for url in urls:
                while True:
                    try:
                        if (await client.get(url)).status_code < 500:
                            break
                    except httpx.HTTPError:
                        pass
                    await trio.sleep(0.1)


async def run_system(settings: Settings, *,
                     task_status: trio.TaskStatus[dict[str, str]] | None = None) -> None:
    """Everything until SIGINT/SIGTERM (or cancellation); ``task_status.started(urls)`` once the
    gateway and the media server answer."""
    import trio

    from ..cache import open_cache
    from ..gateway import create_app, jwt_keys_from, serve_app
    from ..gateway import settle_heap, until_signalled
    from ..runtime import load_service, serve_service

    keys = jwt_keys_from(settings, generate=True)
    names = available_services()
    serve_media = _media_server()
    stop = trio.Event()
    with trio.CancelScope() as everything:
        async with trio.open_nursery() as outer:
            outer.start_soon(lambda: until_signalled(stop, hard_stop=everything, grace=15))
            async with open_transport(settings) as transport:
                cache = open_cache(settings)
                async with trio.open_nursery() as workers:
                    if settings.amqp_url is None:   # no broker: `workup control` comes in through the data dir
                        from ..controller import admin_socket, serve_admin
                        load_control_secret(settings, create=True)   # before the services read it
                        await workers.start(serve_admin, transport, admin_socket(settings.data_path))
                    for i, name in enumerate(names):
                        instance = await workers.start(lambda task_status, name=name: serve_service(
                            load_service(name), settings, transport, grace=2.0, task_status=task_status))
                        if settings.metrics_port:   # service i's /metrics on metrics_port + i
                            instance.metrics.listen(settings.host, settings.metrics_port + i)
                    app = create_app(settings, transport, cache, jwt_keys=keys, request_timeout=settings.request_timeout)
                    async with trio.open_nursery() as front:   # returns after the graceful shutdown
                        api = await front.start(lambda task_status: serve_app(
                            app, settings.host, settings.port, shutdown_trigger=stop.wait, listen_fd=_api_socket_fd,
                            task_status=task_status))
                        urls = {"api": api}
                        if serve_media is not None:
                            media_port = await front.start(lambda task_status: serve_media(
                                settings, host=settings.host, port=settings.media_port,
                                shutdown_trigger=stop.wait, task_status=task_status))
                            urls["media"] = api.rsplit(":", 1)[0] + f":{media_port}"
                        await wait_answering([f"{api}/health"] + ([f"{urls['media']}/describe"] if "media" in urls else []))
                        settle_heap()
                        _banner(settings, urls, names)
                        if task_status is not None:
                            task_status.started(urls)
                    workers.cancel_scope.cancel()
            outer.cancel_scope.cancel()


def _media_server() -> Any:
    try:
        from ..media import serve_media
    except ImportError:
        return None
    return serve_media


def _banner(settings: Settings, urls: dict[str, str], names: list[str]) -> None:
    transport = "RabbitMQ" if settings.amqp_url else "the in-process transport"
    lines = [
        "WorkUp is up",
        f"  API       {urls['api']}/api/v1  (OpenAPI {urls['api']}/openapi.json)",
    ]
    if "media" in urls:
        lines.append(f"  media     {urls['media']}  (upload user {settings.upload_user!r}, "
                     f"password {settings.upload_password!r})")
    lines += [
        f"  services  {', '.join(names) or 'none'} on {transport}",
    ]
    if settings.metrics_port:
        lines.append(f"  metrics   {urls['api']}/metrics, media /metrics, services on ports "
                     f"{settings.metrics_port}..{settings.metrics_port + len(names) - 1} ({', '.join(names)})")
    lines += [
        f"  data      {settings.data_path.resolve()}",
        "Press Ctrl-C to stop.",
    ]
    click.echo("\n".join(lines))


# --- ``--gateway-processes N``: more gateway processes on the API port ------------------------
# One gateway process tops out at what hypercorn's trio worker can parse. With RabbitMQ between
# the gateway and the services, ``workup up`` binds the API socket itself, serves it as before
# and starts N - 1 ``workup gateway`` processes on the same socket (``--listen-fd``); the kernel
# hands each connection to whichever process accepts it. On the in-process transport the
# services are reachable from this process only, so N must be 1 there. Added after the command
# as one self-contained block.

_api_socket_fd: int | None = None      # the API socket bound before start, when N > 1


def gateway_count(spec: str, cpus: int | None) -> int:
    """``"3"`` → 3; ``"auto"`` → one per core (at least 1)."""
    if spec.strip().lower() == "auto":
        return max(1, cpus or 1)
    if not spec.strip().isdigit() or not 1 <= int(spec) <= 256:
        raise click.BadParameter(f"a whole number 1-256 or 'auto', got {spec!r}", param_hint="--gateway-processes")
    return int(spec)


def _with_gateway_processes(cmd: click.Command) -> click.Command:
    serve = cmd.callback
    assert serve is not None
    cmd.params.append(click.Option(
        ["--gateway-processes"], default="1", show_default=True,
        help="gateway processes serving the API port, or 'auto' (one per core); above 1 needs WORKUP_AMQP_URL"))

    def callback(gateway_processes: str, **params: object) -> None:
        global _api_socket_fd
        import os
        import subprocess

        import msgspec

        from .gateway import shared_socket, stop_processes

        count = gateway_count(gateway_processes, os.cpu_count())
        if count == 1:
            serve(**params)
            return
        settings = settings_from(**params)
        if settings.amqp_url is None:
            raise click.UsageError("--gateway-processes above 1 needs RabbitMQ (WORKUP_AMQP_URL): the in-process "
                                   "transport reaches the services from this process only")
        sock, fd, _, port = shared_socket(settings.host, settings.port, "workup up")
        # the children read the same settings from the environment (secrets never on a command line),
        # the flags given here included: settings_from put them in
        env = dict(os.environ, **{f"WORKUP_{k.upper()}": str(v) for k, v in msgspec.structs.asdict(settings).items()
                                  if v is not None and not isinstance(v, (dict, list))})
        env["WORKUP_PORT"] = str(port)
        children = [subprocess.Popen([sys.executable, "-m", "workup", "gateway", "--listen-fd", str(fd)],
                                     pass_fds=(fd,), env=env, stdin=subprocess.DEVNULL) for _ in range(count - 1)]
        _api_socket_fd = fd
        try:
            serve(**params)
        finally:
            stop_processes(children)
            del sock

    cmd.callback = callback
    return cmd


command = _with_gateway_processes(command)
