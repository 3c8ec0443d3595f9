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

    from ..transport.identity import Identity
    from ..transport.local import LocalTransport
    from ..transport.rabbitmq import AmqpTransport

SERVICES = ("users", "jobs", "contracts", "payments")


@click.command(name="up")
@settings_options("host", "port", "media_port", "amqp_prefix", "request_timeout", "metrics_port")
@server_options
def command(**flags: object) -> None:
    """Start the gateway, the services and the media server; print the URLs once they answer."""
    settings = settings_from(**flags)
    _make_data_dir(settings)
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


def _make_data_dir(settings: Settings) -> None:
    """The data directory, made if missing; one that cannot be made is a usage error (exit 2)."""
    try:
        settings.data_path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.UsageError(f"data directory {settings.data_dir}: {exc.strerror}") from None


def _check_ports(settings: Settings) -> None:
    from .gateway import shared_socket

    ports = [("media server", settings.media_port)]
    if _api_socket_fd is None:   # else --gateway-processes has bound the API port already
        ports.insert(0, ("gateway", settings.port))
    for what, port in ports:
        if port:   # 0: any free port, nothing to check
            shared_socket(settings.host, port, what)[0].close()   # SettingsError: one line, exit 2


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
    identity = process_identity(settings, split=_procs is not None and _procs.split)
    if settings.amqp_url is None:
        yield LocalTransport(identity)
        return
    # with the services in processes of their own this one is a gateway and logs in as one; in the
    # one-process layout it is every role at once, which no role account covers: the URL as given
    url = settings.amqp_url
    if _procs is not None and _procs.split:
        from ..transport.accounts import role_amqp_url
        url = role_amqp_url(url, "gateway", settings.amqp_accounts_dir)
    async with AmqpTransport.connect(url, prefix=settings.amqp_prefix, name="workup-up",
                                     identity=identity) as transport:
        yield transport


def process_identity(settings: Settings, *, split: bool) -> Identity:
    """The keys this process holds (made in the data dir if unset): both when it is gateway and
    services at once; the gateway key alone when the services run in processes of their own
    (``split``), as ``workup gateway`` holds (docs/security.md, "Who holds which credential")."""
    from ..transport.identity import load_identity
    return load_identity(settings, "gateway" if split else "both", create=True)


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
                    for i, name in enumerate(names if _procs is None or not _procs.split else []):
                        instance = await workers.start(lambda task_status, name=name: serve_service(
                            load_service(name), settings, transport, grace=2.0, task_status=task_status))
                        if settings.metrics_port:   # service i's /metrics on metrics_port + i
                            instance.metrics.listen(settings.host, settings.metrics_port + i)
                    if _procs is not None:    # services in processes of their own consume before we answer
                        await _procs.wait_ready(transport)
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
                        _banner(settings, urls, _procs.describe() if _procs and _procs.split else names)
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
    if _procs is not None and _procs.split:
        transport += f" (own processes; {_procs.gateways} gateway process{'es' if _procs.gateways > 1 else ''})"
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
    if settings.metrics_port and _procs is not None and _procs.split:
        lines.append(f"  metrics   {urls['api']}/metrics, media /metrics, services from port {settings.metrics_port} "
                     "(each supervisor, then its processes)")
    elif settings.metrics_port:
        lines.append(f"  metrics   {urls['api']}/metrics, media /metrics, services on ports "
                     f"{settings.metrics_port}..{settings.metrics_port + len(names) - 1} ({', '.join(names)})")
    lines += [
        f"  data      {settings.data_path.resolve()}",
        "Press Ctrl-C to stop.",
    ]
    click.echo("\n".join(lines))


# --- distributed: the gateway and each service as processes of their own ----------------------
# One process is one core. With RabbitMQ between the gateway and the services (and Redis, so the
# gateways' cache is invalidated by writers in other processes), ``workup up`` binds the API
# socket itself and serves it, starts ``--gateway-processes`` - 1 ``workup gateway`` processes on
# the same socket (``--listen-fd``: the kernel hands each connection to whichever accepts it) and
# one ``workup worker <service> --processes N`` per service (runtime/supervisor.py restarts a
# crashed child). It answers once every service consumes its queue; on Ctrl-C / SIGTERM it stops
# the gateways, then the workers, each bounded (cli/gateway.py ``stop_processes``). Without a
# broker (embedded) everything stays in this one process. Added after the command as one
# self-contained block.

import subprocess  # noqa: E402  (this block stays self-contained)

_api_socket_fd: int | None = None      # the API socket bound before start, when N > 1
_procs: "_Processes | None" = None      # the child processes, when there are any
_SIGTERM_BOUND = 15.0                   # a gateway process's drain (its graceful timeout + margin)


def gateway_count(spec: str, cpus: int | None) -> int:
    """``"3"`` → 3; ``"auto"`` → one per core (at least 1)."""
    if spec.strip().lower() == "auto":
        return max(1, cpus or 1)
    if not spec.strip().isdigit() or not 1 <= int(spec) <= 256:
        raise click.BadParameter(f"a whole number 1-256 or 'auto', got {spec!r}", param_hint="--gateway-processes")
    return int(spec)


def service_counts(specs: tuple[str, ...], names: list[str], cpus: int | None) -> dict[str, int]:
    """``--processes`` values (``N``, ``auto`` or ``SERVICE=N``, later ones win) → processes per
    service; ``auto`` is one per four cores (at least 1): the gateways take the other cores.
    ``0`` (alone): the services run inside ``workup up`` (empty result)."""
    if specs and specs[-1].strip() == "0":
        return {}
    auto = max(1, (cpus or 1) // 4)
    counts = dict.fromkeys(names, auto)
    for spec in specs:
        service, _, value = spec.rpartition("=")
        value = value.strip().lower()
        if service and service not in counts:
            raise click.BadParameter(f"no service {service!r} (there are {', '.join(names)})", param_hint="--processes")
        if value != "auto" and not (value.isdigit() and 1 <= int(value) <= 64):
            raise click.BadParameter(f"N (1-64), 'auto' or SERVICE=N, got {spec!r}", param_hint="--processes")
        for name in [service] if service else names:
            counts[name] = auto if value == "auto" else int(value)
    return counts


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of a child process (a gateway or a service's worker): ours with every
    setting in it, the flags given to ``workup up`` included (secrets travel here, never on a
    command line). The one place a child's environment is built."""
    import os

    import msgspec

    from ..settings import env_names

    env = dict(os.environ)
    for field, value in msgspec.structs.asdict(settings).items():
        if value is not None and not isinstance(value, (dict, list)):
            env.update(dict.fromkeys(env_names(field), str(value)))
    return env


# the keys a gateway never uses: it neither speaks as SERVICE nor sends control messages
_NOT_FOR_GATEWAYS = ("service_key", "service_key_file", "control_key", "control_key_file")


def gateway_env(settings: Settings) -> dict[str, str]:
    """:func:`child_env` without the variables of the keys a gateway does not hold."""
    from ..settings import env_names

    drop = {name for field in _NOT_FOR_GATEWAYS for name in env_names(field)}
    return {k: v for k, v in child_env(settings).items() if k not in drop}


def _sqlite_backed(settings: Settings, service: str) -> bool:
    """The service's store is an embedded SQLite file: one process may write it."""
    url = {"users": settings.users_mongo_url, "payments": settings.payments_postgres_url}.get(
        service, settings.cassandra_hosts)
    return url is None


class _Processes:
    """The child processes of ``workup up``: service workers (when split) and extra gateways."""

    def __init__(self, settings: Settings, gateways: int, counts: dict[str, int], fd: int, port: int) -> None:
        import msgspec

        self.gateways, self.counts, self.split = gateways, counts, bool(counts)
        self.gateway_env = dict(gateway_env(settings), WORKUP_PORT=str(port))
        self.fd = fd
        self.children: list[subprocess.Popen[bytes]] = []
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        port = settings.metrics_port
        for name, n in counts.items():   # each supervisor's /metrics on a port, its children's after it
            env = child_env(msgspec.structs.replace(settings, processes=n, metrics_port=port))
            self.workers[name] = subprocess.Popen([sys.executable, "-m", "workup", "worker", name],
                                                  env=env, stdin=subprocess.DEVNULL)
            port = port and port + 1 + n

    async def wait_ready(self, transport: object, timeout: float = 300.0) -> None:
        """Until every service's queue has its processes consuming (a worker that exits first is
        a start-up error: its own log says why), then start the other gateways: none answers
        on the API port before the services do."""
        import trio

        from ..settings import SettingsError
        from ..transport import AmqpTransport

        with trio.fail_after(timeout):
            for name, n in self.counts.items():
                assert isinstance(transport, AmqpTransport)
                while await transport.consumer_count(name) < n:
                    code = self.workers[name].poll()
                    if code is not None:
                        raise SettingsError(f"workup worker {name} exited with {code} during start-up")
                    await trio.sleep(0.2)
        self.children = [subprocess.Popen([sys.executable, "-m", "workup", "gateway", "--listen-fd", str(self.fd)],
                                          pass_fds=(self.fd,), env=self.gateway_env, stdin=subprocess.DEVNULL)
                         for _ in range(self.gateways - 1)]

    def describe(self) -> list[str]:
        return [f"{name} ×{n}" for name, n in self.counts.items()]

    def stop(self, grace: float) -> None:
        """The gateways first (their in-flight calls finish), then the workers, each bounded."""
        from .gateway import stop_processes
        stop_processes(self.children, timeout=_SIGTERM_BOUND)
        stop_processes(list(self.workers.values()), timeout=grace + 10)


def _with_processes(cmd: click.Command) -> click.Command:
    serve = cmd.callback
    assert serve is not None
    cmd.params += [
        click.Option(["--gateway-processes"], default="auto", show_default=True,
                     help="gateway processes serving the API port, or 'auto' (one per core when "
                          "WORKUP_AMQP_URL and WORKUP_REDIS_URL are set, else 1); above 1 needs WORKUP_AMQP_URL"),
        click.Option(["--processes"], multiple=True, metavar="N|auto|SERVICE=N",
                     help="worker processes per service, repeatable (default 'auto': one per 4 cores; "
                          "a service on an embedded SQLite store runs 1; 0: every service inside this "
                          "process); needs WORKUP_AMQP_URL and WORKUP_REDIS_URL"),
    ]

    def callback(gateway_processes: str, processes: tuple[str, ...], **params: object) -> None:
        global _api_socket_fd, _procs
        import os

        from ..gateway import jwt_keys_from
        from ..settings import load_control_secret
        from ..transport.identity import load_identity
        from .gateway import shared_socket

        settings = settings_from(**params)
        # the services leave this process only when the gateways' cache is one they all see (Redis)
        split = settings.amqp_url is not None and settings.redis_url is not None
        cpus = os.cpu_count()
        count = gateway_count(gateway_processes, cpus if split else 1)
        counts = service_counts(processes, available_services(), cpus)
        if counts and processes and not split:
            raise click.UsageError("--processes needs RabbitMQ and Redis (WORKUP_AMQP_URL, WORKUP_REDIS_URL): "
                                   "otherwise the services run in this process")
        split = split and bool(counts)
        if count == 1 and not split:
            serve(**params)
            return
        if settings.amqp_url is None:
            raise click.UsageError("--gateway-processes above 1 needs RabbitMQ (WORKUP_AMQP_URL): the in-process "
                                   "transport reaches the services from this process only")
        _make_data_dir(settings)
        # the keys every child reads, made once here before any child could race to make them
        jwt_keys_from(settings, generate=True)
        load_identity(settings, "both", create=True)
        load_control_secret(settings, create=True)
        sock, fd, _, port = shared_socket(settings.host, settings.port, "workup up")
        _api_socket_fd = fd
        _procs = _Processes(settings, count, {n: 1 if _sqlite_backed(settings, n) else c for n, c in counts.items()}
                            if split else {}, fd, port)
        try:
            serve(**params)
        finally:
            _procs.stop(settings.grace)
            del sock

    cmd.callback = callback
    return cmd


command = _with_processes(command)
