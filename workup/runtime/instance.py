"""One running instance of a service on a transport: deps, background tasks, a pool of worker
loops that pull deliveries, and the control channel that reconfigures it live.

Life cycle: *active* (deps open, consuming) ⇄ *frozen* (not consuming, deps closed, control still
listening). ``freeze`` and shutdown both stop the consumer first, give in-flight commands
``grace`` seconds to finish (their deliveries are acked after the reply; anything cut off is
redelivered by the broker), cancel background tasks, then close the deps.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable

import trio

from ..settings import Settings, ensure_secret, read_secret
from .control import (MAX_SOURCE, ControlMessage, ControlRefused, ControlReply, InstanceStatus, Verifier,
    control_key)
from .dispatch import dispatch
from .hotswap import HotSwapError, compile_handler
from .registry import CommandTable
from .context import ProcessRuntime
from .service import Deps, Service

__all__ = ["serve_service", "Instance", "load_control_secret", "ControlError", "parse_count", "run_control",
           "one_arg", "LOG_LEVELS", "HOST"]

log = logging.getLogger("workup.runtime")

HOST = socket.gethostname()
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_ENCODE_REPLY = __import__("msgspec").json.Encoder().encode


class ControlError(Exception):
    """A well-signed control message that cannot be applied (bad argument, unknown command)."""


def parse_count(value: str, what: str, low: int = 1, high: int = 10_000) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ControlError(f"{what} must be a whole number, got {value!r}") from None
    if not low <= n <= high:
        raise ControlError(f"{what} must be between {low} and {high}, got {n}")
    return n


def load_control_secret(settings: Settings, *, create: bool) -> str | None:
    """``WORKUP_CONTROL_KEY`` / ``_FILE``, else the data dir's generated key (created when
    ``create``, as ``workup worker`` and ``workup control`` do so that they agree by default)."""
    secret = read_secret(settings.control_key, settings.control_key_file, "control_key")
    if secret:
        return secret
    path = settings.data_path / "control.key"
    if create or path.exists():
        return ensure_secret(settings.data_path, "control.key")
    return None


class Instance:
    def __init__(self, service: Service[Any], settings: Settings, transport: Any, *,
                 concurrency: int = 64, grace: float = 30.0, supervisor: int | None = None,
                 control_secret: str | None = None) -> None:
        self.service = service
        self.name = service.name
        self.transport = transport
        self.table = CommandTable(service)
        self.rt = ProcessRuntime(service.name, settings, transport)
        self.limiter = trio.CapacityLimiter(concurrency)
        self.grace = grace
        self.supervisor = supervisor
        # without a configured key nobody outside this process can sign: a random one
        self.verifier = Verifier(control_key(control_secret or secrets.token_hex(32)), service.name)
        self.frozen = True           # true state: consuming or not
        self.want_frozen = False     # requested state
        self.stopping = False
        self.started_at = time.time()
        self.handled = 0
        self.in_flight = 0
        self.expired = 0
        self.db_pool_target: int | None = None
        self.start_error: str | None = None
        self.threads_set = False
        self._changed = trio.Event()
        self._source: Any = None
        self._workers: trio.Nursery | None = None
        self._loops = 0

    # -- state machine ---------------------------------------------------------------------
    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    @property
    def max_threads(self) -> int:
        return int(self.limiter.total_tokens)

    async def replay(self, messages: list[ControlMessage]) -> None:
        """Apply control messages already verified (by our supervisor) before we start, so a new
        or restarted process has the configuration its siblings were given."""
        for msg in messages:
            if msg.command in ("freeze", "start"):
                self.want_frozen = msg.command == "freeze"
                continue
            try:
                await self._apply(msg)
            except ControlError as exc:
                log.warning("%s: replayed control %s failed: %s", self.name, msg.command, exc)

    async def run(self, task_status: trio.TaskStatus[Instance] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as root:
            async with self.transport.control(self.name) as control:
                root.start_soon(self._control_loop, control)
                ready: trio.TaskStatus[Instance] | None = task_status
                while not self.stopping:
                    if self.want_frozen:
                        if ready is not None:
                            ready.started(self)
                            ready = None
                        await self._wait_until(lambda: not self.want_frozen or self.stopping)
                        continue
                    if ready is not None:
                        await self._active(ready)  # a failure to start at all is the caller's
                        ready = None
                        continue
                    try:
                        await self._active(None)
                    except Exception as exc:
                        # re-opening deps on `start` failed (database down?): stay frozen, say why
                        log.exception("%s: could not start", self.name)
                        self.start_error = f"{type(exc).__name__}: {exc}"
                        self.want_frozen = True
                        self.frozen = True
                        self._notify()
                root.cancel_scope.cancel()

    async def stop(self) -> None:
        """Drain and return: stop consuming, finish in-flight work within ``grace``, close deps."""
        self.stopping = True
        self._notify()
        await self._wait_until(lambda: self.frozen)

    @asynccontextmanager
    async def _deps(self) -> AsyncIterator[Deps | None]:
        if self.service.open_deps is None:
            yield None
        else:
            async with self.service.open_deps(self.rt.settings) as deps:
                yield deps

    async def _active(self, task_status: trio.TaskStatus[Instance] | None) -> None:
        async with self._deps() as deps:
            self.rt.deps = deps
            try:
                if self.db_pool_target is not None:
                    await self._resize_pool(self.db_pool_target)
                if self.threads_set:
                    self._resize_threads()
                async with trio.open_nursery() as background:
                    for task in self.service.background:
                        background.start_soon(self._keep_running, task)
                    async with self.transport.consume(self.name, self.max_threads) as source:
                        with trio.CancelScope() as work:
                            async with trio.open_nursery() as workers:
                                self._source, self._workers = source, workers
                                self._spawn_loops()
                                self.frozen = False
                                self._notify()
                                log.info("%s: consuming (max threads %d)", self.name, self.max_threads)
                                if task_status is not None:
                                    task_status.started(self)
                                await self._wait_until(lambda: self.want_frozen or self.stopping)
                                # in-flight work gets `grace` seconds; the broker redelivers the rest
                                work.deadline = trio.current_time() + self.grace
                                await source.close()
                        self._source = self._workers = None
                        self._loops = 0
                        if work.cancelled_caught:
                            log.warning("%s: in-flight work cut off after %.3gs", self.name, self.grace)
                    background.cancel_scope.cancel()
            finally:
                self.rt.deps = None
        self.frozen = True
        self._notify()
        log.info("%s: %s", self.name, "stopped" if self.stopping else "frozen")

    def _spawn_loops(self) -> None:
        assert self._workers is not None
        while self._loops < self.max_threads:
            self._workers.start_soon(self._work_loop, self._source)
            self._loops += 1

    async def _keep_running(self, task: Any) -> None:
        delay = 0.5
        while True:
            try:
                await task(self.rt)
                return
            except Exception:
                log.exception("%s: background task %s failed; restarting in %.1fs",
                              self.name, getattr(task, "__name__", task), delay)
            await trio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _work_loop(self, source: Any) -> None:
        table, rt, limiter, now = self.table, self.rt, self.limiter, time.time
        while True:
            try:
                d = await source.receive()
            except trio.EndOfChannel:
                return
            if d.deadline < now():
                self.expired += 1  # the caller has given up: do nothing, just ack
                await self._settle(source, d, None)
                continue
            try:
                limiter.acquire_nowait()  # the usual case: no schedule point for the limiter
            except trio.WouldBlock:
                await limiter.acquire()
            self.in_flight += 1
            try:
                reply = await dispatch(table, rt, d.command, d.body, d.caller, d.deadline, d.request_id)
            finally:
                self.in_flight -= 1
                limiter.release()
            self.handled += 1
            await self._settle(source, d, reply)

    async def _settle(self, source: Any, d: Any, reply: Any) -> None:
        try:
            await source.settle(d, reply)
        except Exception as exc:  # the broker connection went away: it will redeliver
            log.warning("%s: could not answer/ack request %s: %s", self.name, d.request_id, exc)

    # -- control ---------------------------------------------------------------------------
    async def _control_loop(self, control: Any) -> None:
        skip = {"set-processes"} if self.supervisor is not None else set()
        await run_control(control, self.verifier, self.name, self._apply, self.status, skip)

    def status(self) -> InstanceStatus:
        pool = self.rt.deps.db_pool if self.rt.deps is not None else None
        return InstanceStatus(
            service=self.name, host=HOST, pid=os.getpid(), supervisor=self.supervisor,
            max_threads=self.max_threads, prefetch=self.max_threads if not self.frozen else 0,
            db_pool_size=pool.pool_size() if pool is not None else None, frozen=self.frozen, enabled=self.table.enabled(),
            versions=self.table.versions(), log_level=logging.getLevelName(logging.getLogger("workup").getEffectiveLevel()),
            handled=self.handled, in_flight=self.in_flight, uptime=round(time.time() - self.started_at, 1))

    async def _apply(self, msg: ControlMessage) -> str:
        cmd, args = msg.command, msg.args
        if cmd == "status":
            return "status"
        if cmd == "set-max-threads":
            n = parse_count(one_arg(args), "max threads")
            self.limiter.total_tokens = n
            self.threads_set = True
            self._resize_threads()
            if self._source is not None:
                await self._source.set_prefetch(n)
                self._spawn_loops()
            return f"max threads {n}"
        if cmd == "set-max-db-connections":
            n = parse_count(one_arg(args), "max db connections", high=1000)
            self.db_pool_target = n
            if self.rt.deps is not None:
                await self._resize_pool(n)
                return f"db pool {n}"
            return f"db pool {n} (applied on start)"
        if cmd == "freeze":
            self.want_frozen = True
            self._notify()
            with trio.move_on_after(self.grace + 5):
                await self._wait_until(lambda: self.frozen)
            return "frozen"
        if cmd == "start":
            self.want_frozen, self.start_error = False, None
            self._notify()
            with trio.move_on_after(60):
                await self._wait_until(lambda: not self.frozen or self.want_frozen or self.stopping)
            if self.start_error is not None:
                raise ControlError(f"start failed, still frozen: {self.start_error}")
            return "started" if not self.frozen else "starting"
        if cmd in ("delete-command", "add-command"):
            try:
                full = self.table.set_enabled(one_arg(args), cmd == "add-command")
            except KeyError as exc:
                raise ControlError(str(exc.args[0])) from None
            return f"{full} {'enabled' if cmd == 'add-command' else 'disabled'}"
        if cmd == "update-command":
            return self._update(one_arg(args), msg.source)
        if cmd == "set-logging-level":
            level = one_arg(args).upper()
            level = "WARNING" if level == "WARN" else level
            if level not in LOG_LEVELS:
                raise ControlError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {args[0]!r}")
            logging.getLogger("workup").setLevel(level)
            return f"log level {level}"
        if cmd == "set-processes":
            raise ControlError("not running under a supervisor (start it with 'workup worker')")
        raise ControlError(f"unknown control command {cmd!r}")

    def _update(self, name: str, source: str | None) -> str:
        if not source or len(source.encode()) > MAX_SOURCE:
            raise ControlError(f"update-command needs module source of at most {MAX_SOURCE} bytes")
        try:
            full = self.table.resolve(name)
        except KeyError as exc:
            raise ControlError(str(exc.args[0])) from None
        entry = self.table.get(full)
        assert entry is not None
        try:
            handler = compile_handler(full, source, entry.spec.request_type)
        except HotSwapError as exc:
            raise ControlError(f"{full}: {exc}; the old handler stays") from None
        new = self.table.replace(full, handler, source.encode())
        return f"{full} now v{new.version}:{new.digest}"

    def _resize_threads(self) -> None:
        """The deps' limiter of blocking driver calls follows an explicit ``set-max-threads``."""
        lane = self.rt.deps.blocking if self.rt.deps is not None else None
        if lane is not None:
            lane.total_tokens = self.max_threads

    async def _resize_pool(self, n: int) -> None:
        pool = self.rt.deps.db_pool if self.rt.deps is not None else None
        if pool is None:
            raise ControlError(f"service {self.name!r} has no resizable database pool")
        await pool.resize_pool(n)
        log.info("%s: database pool resized to %d", self.name, n)


async def run_control(control: Any, verifier: Verifier, name: str,
                      apply: Callable[[ControlMessage], Awaitable[str | None]],
                      status: Callable[[], InstanceStatus], skip: set[str]) -> None:
    """Verify, apply and answer control messages one at a time, in arrival order. ``apply``
    returning ``None`` means: applied silently (someone else answers)."""
    def reply(ok: bool, detail: str) -> bytes:
        return _ENCODE_REPLY(ControlReply(ok=ok, pid=os.getpid(), host=HOST, detail=detail, status=status()))

    while True:
        d = await control.receive()
        try:
            msg = verifier.verify(d.payload)
        except ControlRefused as exc:
            log.warning("%s: refused a control message: %s", name, exc)
            await control.reply(d, reply(False, f"refused: {exc}"))
            continue
        if msg.command in skip:
            continue
        try:
            detail = await apply(msg)
        except ControlError as exc:
            log.warning("%s: control %s failed: %s", name, msg.command, exc)
            await control.reply(d, reply(False, str(exc)))
        else:
            if detail is None:
                continue
            log.log(logging.DEBUG if msg.command == "status" else logging.INFO,
                    "%s: control %s %s: %s", name, msg.command, " ".join(msg.args), detail)
            await control.reply(d, reply(True, detail))


def one_arg(args: list[str]) -> str:
    if len(args) != 1:
        raise ControlError(f"expected exactly one argument, got {len(args)}")
    return args[0]


async def serve_service(service: Service[Any], settings: Settings, transport: Any, *,
                        concurrency: int = 64, grace: float = 30.0, supervisor: int | None = None,
                        control_secret: str | None = None, replay: list[ControlMessage] = [],
                        task_status: trio.TaskStatus[Instance] = trio.TASK_STATUS_IGNORED) -> None:
    """Run one instance of ``service`` on ``transport`` until cancelled (or :meth:`Instance.stop`).
    ``await nursery.start(serve_service, ...)`` returns the :class:`Instance` once it consumes."""
    if control_secret is None:
        control_secret = load_control_secret(settings, create=settings.amqp_url is not None)
    instance = Instance(service, settings, transport, concurrency=concurrency, grace=grace,
                        supervisor=supervisor, control_secret=control_secret)
    await instance.replay(replay)
    await instance.run(task_status)
