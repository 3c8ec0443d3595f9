"""One running instance of a service on a transport: deps, background tasks, a pool of worker
loops that pull deliveries, and the control channel that reconfigures it live.

Life cycle: *active* (deps open, consuming) ⇄ *frozen* (not consuming, deps closed, control still
listening). ``freeze`` and shutdown both stop the consumer first, give in-flight commands
``grace`` seconds to finish (their deliveries are acked after the reply and the handler's
after-reply work, ``context.py``; anything cut off is redelivered by the broker), cancel
background tasks, then close the deps.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable, Mapping, Sequence

import msgspec
import trio

from ..logs import bind_service
from ..settings import Settings, load_control_secret
from .control import (MAX_SOURCE, ControlError, ControlMessage, ControlRefused, ControlReply, InstanceStatus,
    Verifier, addressed, apply_in_child, control_key, instance_id)
from .dispatch import dispatch, refusal
from .hotswap import HotSwapError, compile_handler
from .metrics import InstanceMetrics
from .registry import CommandTable
from .context import AfterReply, ProcessRuntime
from .service import Background, Deps, Service
from ..transport import ControlSource, Request, Transport, WorkSource
from ..transport.envelope import Reply
from ..transport.identity import Identity

__all__ = ["serve_service", "Instance", "run_control", "HOST"]

log = logging.getLogger("workup.runtime")

HOST = socket.gethostname()
# the bound of one request's after-reply work (its delivery is acked only after it)
AFTER_REPLY_LIMIT = 10.0
_ENCODE_REPLY = msgspec.json.Encoder().encode


class Instance:
    def __init__(self, service: Service[Deps | None], settings: Settings, transport: Transport, *,
                 concurrency: int = 64, grace: float = 30.0, supervisor: int | None = None,
                 control_secret: str | None = None, control_seen: Mapping[str, float] | None = None,
                 identity: Identity | None = None) -> None:
        self.service = service
        # the keys requests are checked with: the ones this process's transport was given
        self.identity = identity or transport.identity
        self.name = service.name
        self.transport = transport
        self.table = CommandTable(service)
        self.rt = ProcessRuntime(service.name, settings, transport)
        self.limiter = trio.CapacityLimiter(concurrency)
        self.grace = grace
        self.supervisor = supervisor
        self.started_at = time.time()
        # without a configured key nobody outside this process can sign: a random one. A message
        # issued before we started, or seen by our supervisor (control_seen), is a replay.
        self.verifier = Verifier(control_key(control_secret or secrets.token_hex(32)), service.name,
                                 not_before=self.started_at, seen=control_seen)
        self.frozen = True           # true state: consuming or not
        self.want_frozen = False     # requested state
        self.running = False         # run() has begun (before it, control messages are replays)
        self.stopping = False
        self.handled = 0
        self.in_flight = 0
        self.expired = 0
        self.refused = 0             # requests whose caller was not proven (answered 403)
        self.db_pool_target: int | None = None
        self.start_error: str | None = None
        self.threads_set = False
        self._changed = trio.Event()
        self._source: WorkSource | None = None
        self._workers: trio.Nursery | None = None
        self._loops = 0
        # observability (runtime/metrics.py): counted here, served by a child's listener
        self.metrics = InstanceMetrics(service.name, self.status, lambda c: self.table.get(c) is not None)

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

    async def replay(self, messages: Sequence[ControlMessage]) -> None:
        """Apply control messages already verified (by our supervisor) before we start, so a new
        or restarted process has the configuration its siblings were given."""
        for msg in messages:
            try:
                await self._apply(msg)
            except ControlError as exc:
                log.warning("%s: replayed control %s failed: %s", self.name, msg.command, exc)

    async def run(self, task_status: trio.TaskStatus[Instance] = trio.TASK_STATUS_IGNORED) -> None:
        self.running = True
        bind_service(self.name)   # log lines of this instance's tasks name the service
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
        assert self._workers is not None and self._source is not None
        while self._loops < self.max_threads:
            self._workers.start_soon(self._work_loop, self._source)
            self._loops += 1

    async def _keep_running(self, task: Background) -> None:
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

    async def _work_loop(self, source: WorkSource) -> None:
        table, rt, limiter, now, identity = self.table, self.rt, self.limiter, time.time, self.identity
        while True:
            try:
                d = await source.receive()
            except trio.EndOfChannel:
                return
            if d.deadline < now():
                self.expired += 1  # the caller has given up: do nothing, just ack
                self.metrics.expired()
                await self._settle(source, d, None)
                continue
            refused = refusal(identity, d, now())  # before any handler: who sent it, proven
            if refused is not None:
                self.refused += 1
                await self._settle(source, d, refused)
                continue
            try:
                limiter.acquire_nowait()  # the usual case: no schedule point for the limiter
            except trio.WouldBlock:
                await limiter.acquire()
            self.in_flight += 1
            started = time.perf_counter()
            after: list[AfterReply] = []
            try:
                reply = await dispatch(table, rt, d.command, d.body, d.caller, d.deadline, d.request_id, after)
            finally:
                self.in_flight -= 1
                limiter.release()
            self.handled += 1
            self.metrics.observe(d.command, reply.status, time.perf_counter() - started)
            await self._settle(source, d, reply, after)

    async def _settle(self, source: WorkSource, d: Request, reply: Reply | None,
                      after: list[AfterReply] | None = None) -> None:
        try:
            if after:
                await source.settle(d, reply, after=lambda: self._after_reply(after, d.request_id))
            else:
                await source.settle(d, reply)
        except Exception as exc:  # the broker connection went away: it will redeliver
            log.warning("%s: could not answer/ack request %s: %s", self.name, d.request_id, exc)

    async def _after_reply(self, work: list[AfterReply], request_id: str) -> None:
        """The handler's after-reply work (``context.py``), in order, bounded by
        :data:`AFTER_REPLY_LIMIT`. A failure is logged and the rest still runs: each piece only
        saves the outbox relay a step it would otherwise do itself."""
        with trio.move_on_after(AFTER_REPLY_LIMIT) as limit:
            for w in work:
                try:
                    await w()
                except Exception as exc:
                    log.warning("%s: after-reply work of request %s failed (the relay finishes it): %s",
                                self.name, request_id, exc)
        if limit.cancelled_caught:
            log.warning("%s: after-reply work of request %s cut off after %.3gs (the relay finishes it)",
                        self.name, request_id, AFTER_REPLY_LIMIT)

    # -- control (what each command means: runtime/control.py CONTROL) -----------------------
    async def _control_loop(self, control: ControlSource) -> None:
        await run_control(control, self.verifier, self.name, self._apply, self.status, group=self.group)

    @property
    def group(self) -> str | None:
        """The supervisor's instance ID: a message addressed to it is for this process too."""
        return None if self.supervisor is None else instance_id(HOST, self.supervisor)

    def status(self) -> InstanceStatus:
        pool = self.rt.deps.db_pool if self.rt.deps is not None else None
        return InstanceStatus(
            service=self.name, host=HOST, pid=os.getpid(), supervisor=self.supervisor,
            max_threads=self.max_threads, prefetch=self.max_threads if not self.frozen else 0,
            db_pool_size=pool.pool_size() if pool is not None else None, frozen=self.frozen, enabled=self.table.enabled(),
            versions=self.table.versions(), log_level=logging.getLevelName(logging.getLogger("workup").getEffectiveLevel()),
            handled=self.handled, in_flight=self.in_flight, uptime=round(time.time() - self.started_at, 1))

    async def _apply(self, msg: ControlMessage) -> str | None:
        return await apply_in_child(self, msg, supervised=self.supervisor is not None, group=self.group)

    # the ChildTarget methods the CONTROL table's appliers call
    async def set_max_threads(self, n: int) -> str:
        self.limiter.total_tokens = n
        self.threads_set = True
        self._resize_threads()
        if self._source is not None:
            await self._source.set_prefetch(n)
            self._spawn_loops()
        return f"max threads {n}"

    async def set_max_db_connections(self, n: int) -> str:
        self.db_pool_target = n
        if self.rt.deps is not None:
            await self._resize_pool(n)
            return f"db pool {n}"
        return f"db pool {n} (applied on start)"

    async def set_frozen(self, frozen: bool) -> str:
        if not self.running:  # a replay: run() starts in the requested state
            self.want_frozen = frozen
            return "frozen" if frozen else "starting"
        if frozen:
            self.want_frozen = True
            self._notify()
            with trio.move_on_after(self.grace + 5):
                await self._wait_until(lambda: self.frozen)
            return "frozen"
        self.want_frozen, self.start_error = False, None
        self._notify()
        with trio.move_on_after(60):
            await self._wait_until(lambda: not self.frozen or self.want_frozen or self.stopping)
        if self.start_error is not None:
            raise ControlError(f"start failed, still frozen: {self.start_error}")
        return "started" if not self.frozen else "starting"

    def set_enabled(self, name: str, enabled: bool) -> str:
        try:
            full = self.table.set_enabled(name, enabled)
        except KeyError as exc:
            raise ControlError(str(exc.args[0])) from None
        return f"{full} {'enabled' if enabled else 'disabled'}"

    def update_handler(self, name: str, source: str | None) -> str:
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


async def run_control(control: ControlSource, verifier: Verifier, name: str,
                      apply: Callable[[ControlMessage], Awaitable[str | None]],
                      status: Callable[[], InstanceStatus], *, group: str | None = None) -> None:
    """Verify, apply and answer control messages one at a time, in arrival order. ``apply``
    returning ``None`` means: applied silently, or not ours to apply (someone else answers).
    A message addressed to another instance (not this process, nor its supervisor ``group``) is
    left unanswered. A refused one is answered with the reason alone: whoever cannot sign learns
    nothing of the instance's state."""
    me = instance_id(HOST, os.getpid())

    def reply(ok: bool, detail: str) -> bytes:
        return _ENCODE_REPLY(ControlReply(ok=ok, pid=os.getpid(), host=HOST, detail=detail, status=status()))

    while True:
        d = await control.receive()
        try:
            if control.controller is not None and d.sender != control.controller:
                # the key alone is not enough: only the controller's broker account may send
                raise ControlRefused("wrong sender", f"published by {d.sender!r}, not {control.controller!r}")
            msg = verifier.verify(d.payload)
        except ControlRefused as exc:
            log.warning("%s: refused a control message: %s", name, exc)
            await control.reply(d, _ENCODE_REPLY(ControlReply(ok=False, pid=os.getpid(), host=HOST,
                                                              detail=f"refused: {exc.reason}")))
            continue
        if not addressed(msg, me, group):
            log.debug("%s: control %s is for %s", name, msg.command, msg.instance)
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


async def serve_service(service: Service[Deps | None], settings: Settings, transport: Transport, *,
                        concurrency: int = 64, grace: float = 30.0, supervisor: int | None = None,
                        control_secret: str | None = None, replay: Sequence[ControlMessage] = (),
                        control_seen: Mapping[str, float] | None = None,
                        identity: Identity | None = None,
                        task_status: trio.TaskStatus[Instance] = trio.TASK_STATUS_IGNORED) -> None:
    """Run one instance of ``service`` on ``transport`` until cancelled (or :meth:`Instance.stop`).
    ``await nursery.start(serve_service, ...)`` returns the :class:`Instance` once it consumes.
    Requests are checked with ``identity`` (default: the transport's keys)."""
    if control_secret is None:
        control_secret = load_control_secret(settings, create=settings.amqp_url is not None)
    instance = Instance(service, settings, transport, concurrency=concurrency, grace=grace,
                        supervisor=supervisor, control_secret=control_secret, control_seen=control_seen,
                        identity=identity)
    await instance.replay(replay)
    await instance.run(task_status)
