"""The system a load bench talks to: ``workup up`` it starts itself (a child process on free
ports with a fresh data directory), the split topology (``workup gateway --processes G`` and one
``workup worker SERVICE --processes W`` per service, for the scale curves), or one already
running at a given URL.

The children inherit the environment, so with ``WORKUP_AMQP_URL`` and the other server URLs set
``workup up`` runs distributed (services on RabbitMQ, stores on their servers) and
:func:`mode_of` says so; the split topology needs the broker. Their CPU time and RSS (each child
and every process under it) are read with psutil, so a report can put the system's CPU per
request next to the load generator's. :func:`cpu_by_group` reads, from ``/proc``, the CPU of
every process of the machine grouped as issue 15's table does: WorkUp's own processes, each
backing server (Cassandra, FerretDB, RabbitMQ, PostgreSQL, Redis), their sum, and the whole
machine (the servers are shared with whatever else runs there: report the load average beside).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    import psutil

__all__ = ["System", "start_embedded", "start_split", "attach", "mode_of", "role_of", "SERVER_VARIABLES",
           "cpu_by_group", "cpu_between", "CpuSnapshot", "CPU_GROUPS"]

# The settings that turn the embedded defaults into servers (workup/settings.py).
SERVER_VARIABLES = ("WORKUP_AMQP_URL", "WORKUP_REDIS_URL", "WORKUP_USERS_MONGO_URL",
                    "WORKUP_PAYMENTS_POSTGRES_URL", "WORKUP_CASSANDRA_HOSTS")


def mode_of(environ: Mapping[str, str]) -> str:
    """``distributed`` when the services talk over RabbitMQ, else ``embedded``."""
    return "distributed" if environ.get("WORKUP_AMQP_URL") else "embedded"


class System(msgspec.Struct, kw_only=True):
    """Where the API is (``base_url``) and, when we started it, its processes (``pids``: each
    the root of a tree) and where its log is."""
    base_url: str
    mode: str
    servers: list[str]                 # which of SERVER_VARIABLES were set (names only)
    topology: str = "given"            # "up", "split (G gateways, W workers per service)", "given"
    pids: list[int] = []
    roles: list[str] = []              # what each of ``pids`` runs ("up", "gateway", "worker jobs")
    data_dir: str | None = None
    log_path: str | None = None

    def _processes(self) -> list["psutil.Process"]:
        import psutil
        found = []
        for pid in self.pids:
            try:
                root = psutil.Process(pid)
                found += [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
        return found

    def cpu_seconds(self) -> float | None:
        """CPU time of the system's processes so far (``None`` when we did not start it)."""
        by_role = self.cpu_seconds_by_role()
        return sum(by_role.values()) if by_role else None

    def cpu_seconds_by_role(self) -> dict[str, float]:
        """CPU time so far of each role's process tree (``roles``; ``"gateway"`` alone tells what
        the gateway's processes cost per request beside the workers'), summed over the trees
        that share a role; empty when we did not start the system."""
        import psutil
        out: dict[str, float] = {}
        for pid, role in zip(self.pids, self.roles or [str(p) for p in self.pids]):
            try:
                root = psutil.Process(pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            # a process under the root that is a workup role of its own (``workup up``'s gateways
            # and workers) counts under that role; any other (a worker's children, the scrypt
            # pool) under its parent's
            roles = {pid: role}
            for proc in tree:
                try:
                    t, cmd, parent = proc.cpu_times(), proc.cmdline(), proc.ppid()
                except psutil.Error:
                    continue
                mine = role_of(cmd) if proc.pid != pid and "workup" in cmd else roles.get(parent, role)
                roles[proc.pid] = mine
                out[mine] = out.get(mine, 0.0) + t.user + t.system + t.children_user + t.children_system
        return out

    def rss_by_process(self) -> dict[str, int]:
        """RSS in bytes of every process of the system, keyed ``<pid> <command>``."""
        import psutil
        out = {}
        for proc in self._processes():
            try:
                cmd = proc.cmdline()
                out[f"{proc.pid} {' '.join(a for a in cmd[2:5] if not a.startswith('-'))}"] = proc.memory_info().rss
            except psutil.Error:
                continue
        return out

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None:
            return ""
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# The backing servers by process name (``comm``) and command line, in issue 15's order.
CPU_GROUPS = ("WorkUp", "Cassandra", "FerretDB", "RabbitMQ", "PostgreSQL", "Redis")
_SERVERS: tuple[tuple[str, Callable[[str, str], bool]], ...] = (
    ("Cassandra", lambda name, cmd: name == "java" and "cassandra" in cmd.lower()),
    ("FerretDB", lambda name, cmd: name.startswith("ferret")),
    ("RabbitMQ", lambda name, cmd: name in ("beam.smp", "erl_child_setup", "epmd", "inet_gethost")),
    ("PostgreSQL", lambda name, cmd: name.startswith("postgres")),
    ("Redis", lambda name, cmd: name.startswith("redis-server")),
)


def _is_workup(cmd: list[str]) -> bool:
    return any(a in ("workup", "workup.runtime.child") or a.endswith("/workup") for a in cmd[1:3])


class CpuSnapshot(msgspec.Struct):
    """CPU seconds so far of each process of the machine (pid → group, seconds) and of the whole
    machine; :func:`cpu_between` turns two into each group's CPU over the window."""
    processes: dict[int, tuple[str, float]]
    machine: float


def cpu_by_group(system: "System | None" = None) -> CpuSnapshot:
    """Every process of one of :data:`CPU_GROUPS` with its CPU seconds so far (user + system).
    WorkUp is the process trees of ``system`` when we started it, else every ``workup`` process
    but this one."""
    import psutil
    out: dict[int, tuple[str, float]] = {}
    ours = {p.pid for p in system._processes()} if system is not None and system.pids else None
    me = os.getpid()
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        info = proc.info
        t, cmd = info.get("cpu_times"), info.get("cmdline") or []
        if t is None:
            continue
        name = info.get("name") or ""
        if (proc.pid in ours) if ours is not None else (proc.pid != me and _is_workup(cmd)):
            group: str | None = "WorkUp"
        else:
            group = next((g for g, match in _SERVERS if match(name, " ".join(cmd[:3]))), None)
        if group is not None:
            out[proc.pid] = (group, t.user + t.system)
    times = psutil.cpu_times()
    return CpuSnapshot(out, sum(times) - times.idle - getattr(times, "iowait", 0.0))


def cpu_between(start: CpuSnapshot, end: CpuSnapshot) -> dict[str, float]:
    """CPU seconds of each group over the window, ``"all"`` (their sum) and ``"machine"``
    (every process, from ``/proc/stat``). Per process: one started in the window counts whole;
    one that ended in it is left out (a pid's own counters die with it), so a group never goes
    negative when short-lived processes come and go."""
    out = dict.fromkeys(CPU_GROUPS, 0.0)
    for pid, (group, seconds) in end.processes.items():
        before = start.processes.get(pid)
        out[group] += seconds - (before[1] if before is not None and before[0] == group else 0.0)
    out["all"] = sum(out[g] for g in CPU_GROUPS)
    out["machine"] = end.machine - start.machine
    return out


def role_of(argv: object) -> str:
    """``python -m workup worker jobs --processes 2`` -> ``worker jobs``: the subcommand and its
    positional arguments, the options left out."""
    args = [str(a) for a in argv] if isinstance(argv, (list, tuple)) else str(argv).split()
    rest = args[args.index("workup") + 1:] if "workup" in args else args
    words: list[str] = []
    for a in rest:
        if a.startswith("-"):
            break
        words.append(a)
    return " ".join(words) or "?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(base_url: str) -> bool:
    import httpx
    try:
        return httpx.get(base_url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def attach(base_url: str) -> System:
    """A system someone else runs; its mode is what the environment of this process says."""
    if not _healthy(base_url.rstrip("/")):
        raise RuntimeError(f"{base_url}/health does not answer 200")
    return System(base_url=base_url.rstrip("/"), mode=mode_of(os.environ),
                  servers=[v for v in SERVER_VARIABLES if os.environ.get(v)])


class _Children:
    """Context manager over the child processes of one topology: started by ``_start`` (which
    returns the :class:`System`), stopped with SIGTERM (then SIGKILL) on exit, their data removed."""

    def __init__(self, *, startup_timeout: float, extra_env: Mapping[str, str], keep_data: bool) -> None:
        self.startup_timeout, self.extra_env, self.keep_data = startup_timeout, extra_env, keep_data
        self.procs: list[subprocess.Popen[bytes]] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="workup-bench-"))
        self.log_path = self.tmp / "system.log"
        self.env = dict(os.environ, WORKUP_LOG_LEVEL="WARNING", WORKUP_DATA_DIR=str(self.tmp / "data"),
                        **self.extra_env)

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "workup", *args], env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def wait_until(self, ready: Callable[[], bool], system: System, what: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not ready():
            exited = [p for p in self.procs if p.poll() is not None]
            if exited or time.monotonic() > deadline:
                # read the log before __exit__ removes it with the data directory
                why = "; ".join(f"`{role_of(p.args)}` (pid {p.pid}) exited with {p.returncode}" for p in exited)
                tail = system.log_tail(60) or f"(nothing in {system.log_path})"
                self.__exit__()
                raise RuntimeError(f"{what} not ready within {self.startup_timeout:.0f} s"
                                   f"{f' ({why})' if why else ''}; the system's log ended:\n{tail}")
            time.sleep(0.3)

    def _start(self) -> System:
        raise NotImplementedError

    def __enter__(self) -> System:
        return self._start()

    def __exit__(self, *exc: object) -> None:
        from ..cli.gateway import stop_processes

        stop_processes(self.procs)
        if not self.keep_data:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def system(self, port: int, topology: str) -> System:
        return System(base_url=f"http://127.0.0.1:{port}", mode=mode_of(self.env), topology=topology,
                      servers=[v for v in SERVER_VARIABLES if self.env.get(v)],
                      pids=[p.pid for p in self.procs], roles=[role_of(p.args) for p in self.procs], data_dir=str(self.tmp), log_path=str(self.log_path))


class _Embedded(_Children):
    """``workup up`` (with ``up_args``) as one child (its own children under it)."""

    def __init__(self, *, up_args: list[str], startup_timeout: float, extra_env: Mapping[str, str],
                 keep_data: bool) -> None:
        super().__init__(startup_timeout=startup_timeout, extra_env=extra_env, keep_data=keep_data)
        self.up_args = up_args

    def _start(self) -> System:
        port = _free_port()
        self.spawn("up", "--port", str(port), "--media-port", str(_free_port()), *self.up_args)
        system = self.system(port, "up")
        self.wait_until(lambda: _healthy(system.base_url), system, "workup up (GET /health)")
        return system


SERVICES = ("users", "jobs", "contracts", "payments")


class _Split(_Children):
    """``workup gateway --processes G`` and ``workup worker SERVICE --processes W`` for each
    service, on RabbitMQ under a prefix of their own; ready when every service has W consumers."""

    def __init__(self, *, gateways: int, workers: int, startup_timeout: float, extra_env: Mapping[str, str],
                 keep_data: bool) -> None:
        super().__init__(startup_timeout=startup_timeout, extra_env=extra_env, keep_data=keep_data)
        self.gateways, self.workers = gateways, workers
        if not self.env.get("WORKUP_AMQP_URL"):
            raise RuntimeError("the split topology (--gateways/--workers) needs WORKUP_AMQP_URL")
        self.env.setdefault("WORKUP_JWT_KEY", secrets.token_urlsafe(32))   # one key for every process

    def _consumers(self) -> dict[str, int]:
        import trio

        from ..transport import AmqpTransport

        async def count() -> dict[str, int]:
            async with AmqpTransport.connect(self.env["WORKUP_AMQP_URL"], prefix=self.env.get("WORKUP_AMQP_PREFIX", "workup"),
                                             name="bench-ready") as t:
                return {s: await t.consumer_count(s) for s in SERVICES}
        return trio.run(count)

    def _start(self) -> System:
        port = _free_port()
        for service in SERVICES:
            self.spawn("worker", service, "--processes", str(self.workers), "--grace", "5")
        self.spawn("gateway", "--port", str(port), "--processes", str(self.gateways))
        system = self.system(port, f"split ({self.gateways} gateway, {self.workers} worker processes per service)")
        self.wait_until(lambda: _healthy(system.base_url), system, "workup gateway (GET /health)")
        self.wait_until(lambda: min(self._consumers().values()) >= self.workers, system,
                        f"{self.workers} consumer(s) per service")
        return system


def start_embedded(*, startup_timeout: float = 180.0, extra_env: Mapping[str, str] | None = None,
                   keep_data: bool = False, up_args: list[str] | None = None) -> _Children:
    """``with start_embedded() as system:`` runs ``workup up`` (with ``up_args``) for the block."""
    return _Embedded(up_args=list(up_args or []), startup_timeout=startup_timeout, extra_env=extra_env or {},
                     keep_data=keep_data)


def start_split(*, gateways: int, workers: int, startup_timeout: float = 180.0,
                extra_env: Mapping[str, str] | None = None, keep_data: bool = False) -> _Children:
    """``with start_split(gateways=G, workers=W) as system:`` runs the split topology."""
    return _Split(gateways=gateways, workers=workers, startup_timeout=startup_timeout,
                  extra_env=extra_env or {}, keep_data=keep_data)
