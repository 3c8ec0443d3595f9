"""The control plane in one file: every control command, and the signed message that carries it.

:data:`CONTROL` declares each command once: its arguments and their bounds, who applies it (each
worker process, the ``workup worker`` supervisor, or both), whether the supervisor remembers it
for children it starts later (and which later message supersedes it), and how it is applied.
The controller validates arguments from it (``workup/controller/_commands.py``), an instance
applies it (:func:`apply_in_child`, called by ``runtime/instance.py``), the supervisor answers or
remembers it (:func:`apply_in_supervisor`, ``runtime/supervisor.py``), and ``workup control --help``
and the command table of ``docs/workers.md`` are read from it (``tests/controller/test_pure.py``
checks the docs). To add a control command: one entry here, one method on the instance or the
supervisor if it needs one, one row in that docs table.

A message is a compact JWS (HS256) whose payload is a :class:`ControlMessage`; it names its
target service, an issued-at, an expiry (a short validity window) and a random nonce, so a message
is refused when unsigned, badly signed, stale, meant for another service, or replayed. Replayed
means: its nonce was seen by this process, or by the supervisor that started it (which hands its
live nonces to each child it starts), or it was issued before this process started (a message
published then never reached a control queue bound later, so only a re-publication delivers it;
:data:`CLOCK_SKEW` is allowed for the controller's clock). So a freshly started or newly scaled
instance refuses a replay as the running ones do. It may name
one instance (:func:`instance_id`, ``host:pid``): that process alone, or a supervisor and its
children, apply it and answer (:func:`addressed`); the others stay silent. A refused message is
answered with the reason only (:attr:`ControlRefused.reason`), never with the instance's state.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import secrets
import time
from typing import Awaitable, Callable, ClassVar, Literal, Mapping, Protocol, Sequence

import msgspec
from jwcrypto import jwk, jws
from jwcrypto.common import JWException, base64url_encode

from ..settings import LOG_LEVELS

__all__ = [
    "CONTROL", "ControlCommand", "AppliedBy", "CHILD", "SUPERVISOR", "Arg", "Count", "LogLevel",
    "CommandName", "SourceFile", "Sticky", "ChildTarget", "SupervisorTarget", "ControlError",
    "apply_in_child", "apply_in_supervisor", "sticky_key", "instance_id", "addressed",
    "ControlMessage", "ControlReply", "InstanceStatus", "ControlRefused",
    "control_key", "sign", "Verifier", "MAX_WINDOW", "MAX_SOURCE",
]

MAX_WINDOW = 120.0      # seconds a signed message may live at most
CLOCK_SKEW = 5.0        # tolerated clock difference between controller and instances
MAX_SOURCE = 256 * 1024  # bytes of module source in update-command


class ControlError(Exception):
    """A control command that cannot be applied (bad argument, unknown command); ``str()`` is the
    one-line reason the controller prints."""


# -- arguments ---------------------------------------------------------------------------------
class Arg(msgspec.Struct, frozen=True):
    """One positional argument; :meth:`check` returns its canonical form or raises ControlError."""

    metavar: str
    on_wire: ClassVar[bool] = True   # False: the controller reads it and sends something else

    def check(self, command: str, value: str) -> str:
        return value

    def bounds(self) -> str:
        return ""


class Count(Arg, frozen=True):
    """A whole number from 1 to ``high``."""

    high: int = 10_000

    def check(self, command: str, value: str) -> str:
        # isascii: str.isdigit() is also true of "²", which int() refuses
        if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= self.high:
            raise ControlError(f"{command} needs a whole number between 1 and {self.high}, got {value!r}")
        return str(int(value))

    def bounds(self) -> str:
        return f"{self.metavar}: 1 to {self.high}"


class LogLevel(Arg, frozen=True):
    """A ``logging`` level name, any case; ``WARN`` means ``WARNING``."""

    def check(self, command: str, value: str) -> str:
        level = value.upper()
        level = "WARNING" if level == "WARN" else level
        if level not in LOG_LEVELS:
            raise ControlError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
        return level

    def bounds(self) -> str:
        return f"{self.metavar}: {', '.join(LOG_LEVELS)}"


class CommandName(Arg, frozen=True):
    """A service command, short (``CreateJob``) or full (``jobs.CreateJob``); the instance resolves it."""

    def bounds(self) -> str:
        return f"{self.metavar}: short (CreateJob) or full (jobs.CreateJob)"


class SourceFile(Arg, frozen=True):
    """A ``.py`` file the controller reads; its text travels as :attr:`ControlMessage.source`."""

    on_wire: ClassVar[bool] = False

    def check(self, command: str, value: str) -> str:
        if not value.endswith(".py"):
            raise ControlError(f"{command} needs a .py file, got {value!r}")
        return value

    def bounds(self) -> str:
        return f"{self.metavar}: Python source, at most {MAX_SOURCE // 1024} KiB"


# -- who applies a command, and what the supervisor remembers ------------------------------------
class AppliedBy(enum.Flag):
    CHILD = enum.auto()        # every worker process (an Instance)
    SUPERVISOR = enum.auto()   # the `workup worker` supervisor


CHILD, SUPERVISOR = AppliedBy.CHILD, AppliedBy.SUPERVISOR


def _full_name(service: str, name: str) -> str:  # the rule of CommandTable.resolve
    return name if "." in name else f"{service}.{name}"


class Sticky(msgspec.Struct, frozen=True):
    """The supervisor replays remembered messages to children it starts later; of the messages
    with one key (:func:`sticky_key`) only the latest is kept."""

    group: str   # commands of one group supersede each other (freeze and start)
    per: Literal["group", "command", "message"] = "group"   # key also by command name / keep each

    def describe(self) -> str:
        return {"group": "the latest", "command": "the latest per command",
                "message": "every one, in order"}[self.per]


class ChildTarget(Protocol):
    """What the child's appliers call: a running :class:`~workup.runtime.instance.Instance`.
    Each method returns the detail of the reply."""

    async def set_max_threads(self, n: int) -> str: ...
    async def set_max_db_connections(self, n: int) -> str: ...
    async def set_frozen(self, frozen: bool) -> str: ...
    def set_enabled(self, name: str, enabled: bool) -> str: ...
    def update_handler(self, name: str, source: str | None) -> str: ...


class SupervisorTarget(Protocol):
    """What the supervisor's appliers call: :class:`~workup.runtime.supervisor.Supervisor`."""

    async def set_processes(self, n: int) -> None: ...


# an applier gets the checked wire arguments and the message's source (update-command's module)
ChildApply = Callable[[ChildTarget, list[str], str | None], Awaitable[str]]
SupervisorApply = Callable[[SupervisorTarget, list[str], str | None], Awaitable[str]]


class ControlCommand(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    summary: str                          # one line for `workup control --help`
    args: tuple[Arg, ...] = ()            # as the controller's command line takes them
    sticky: Sticky | None = None          # remembered by the supervisor for new children
    child: ChildApply | None = None       # how a worker process applies it
    supervisor: SupervisorApply | None = None

    def __post_init__(self) -> None:
        if self.child is None and self.supervisor is None:
            raise ValueError(f"control command {self.name!r} is applied by nobody")
        if self.sticky is not None and (self.child is None or self.supervisor is not None):
            # the supervisor remembers only what it leaves to the children
            raise ValueError(f"control command {self.name!r}: only a child-only command is remembered")

    @property
    def applied_by(self) -> AppliedBy:
        by = AppliedBy(0)
        if self.child is not None:
            by |= CHILD
        if self.supervisor is not None:
            by |= SUPERVISOR
        return by

    @property
    def names_a_command(self) -> bool:
        """It acts on one service's command, so it cannot go to every service at once."""
        return any(isinstance(a, CommandName) for a in self.args)

    def usage(self) -> str:
        return " ".join([self.name, *(a.metavar for a in self.args)])

    def bounds(self) -> str:
        return "; ".join(b for b in (a.bounds() for a in self.args) if b)

    def check_cli(self, args: Sequence[str]) -> list[str]:
        """The controller's command-line arguments, before anything is sent."""
        return self._check(self.args, args)

    def check_wire(self, args: Sequence[str]) -> list[str]:
        """A received message's arguments (a file argument has become the message's source)."""
        return self._check(tuple(a for a in self.args if a.on_wire), args)

    def _check(self, specs: tuple[Arg, ...], args: Sequence[str]) -> list[str]:
        if len(args) != len(specs):
            n = len(specs)
            raise ControlError(f"{self.name} takes {n} argument{'s' if n != 1 else ''}, got {len(args)}")
        return [spec.check(self.name, value) for spec, value in zip(specs, args)]


# -- the appliers ------------------------------------------------------------------------------
async def _status(target: object, args: list[str], source: str | None) -> str:
    return "status"  # every reply carries the status anyway


async def _set_max_threads(target: ChildTarget, args: list[str], source: str | None) -> str:
    return await target.set_max_threads(int(args[0]))


async def _set_max_db_connections(target: ChildTarget, args: list[str], source: str | None) -> str:
    return await target.set_max_db_connections(int(args[0]))


async def _freeze(target: ChildTarget, args: list[str], source: str | None) -> str:
    return await target.set_frozen(True)


async def _start(target: ChildTarget, args: list[str], source: str | None) -> str:
    return await target.set_frozen(False)


async def _delete_command(target: ChildTarget, args: list[str], source: str | None) -> str:
    return target.set_enabled(args[0], False)


async def _add_command(target: ChildTarget, args: list[str], source: str | None) -> str:
    return target.set_enabled(args[0], True)


async def _update_command(target: ChildTarget, args: list[str], source: str | None) -> str:
    return target.update_handler(args[0], source)


async def _set_logging_level(target: object, args: list[str], source: str | None) -> str:
    logging.getLogger("workup").setLevel(args[0])  # process-wide: nothing of the instance's
    return f"log level {args[0]}"


async def _set_processes(target: SupervisorTarget, args: list[str], source: str | None) -> str:
    n = int(args[0])
    await target.set_processes(n)
    return f"processes {n}"


_COMMANDS = (
    ControlCommand(name="status", summary="each process's state, as a table",
                   child=_status, supervisor=_status),
    ControlCommand(name="set-max-threads", summary="commands in progress per process (and prefetch)",
                   args=(Count("N", high=10_000),), sticky=Sticky("set-max-threads"), child=_set_max_threads),
    ControlCommand(name="set-max-db-connections", summary="the database pool of each process",
                   args=(Count("N", high=1000),), sticky=Sticky("set-max-db-connections"),
                   child=_set_max_db_connections),
    ControlCommand(name="freeze", summary="stop consuming, finish in-flight work, close deps",
                   sticky=Sticky("frozen"), child=_freeze),
    ControlCommand(name="start", summary="reopen deps and consume again",
                   sticky=Sticky("frozen"), child=_start),
    ControlCommand(name="delete-command", summary="disable a command (its calls get 503)",
                   args=(CommandName("NAME"),), sticky=Sticky("enabled", "command"), child=_delete_command),
    ControlCommand(name="add-command", summary="enable a deleted command again",
                   args=(CommandName("NAME"),), sticky=Sticky("enabled", "command"), child=_add_command),
    ControlCommand(name="update-command", summary="replace a command's handler with the file's",
                   args=(CommandName("NAME"), SourceFile("FILE.py")), sticky=Sticky("handler", "message"),
                   child=_update_command),
    ControlCommand(name="set-logging-level", summary="the level of the workup loggers",
                   args=(LogLevel("LEVEL"),), sticky=Sticky("set-logging-level"), child=_set_logging_level),
    ControlCommand(name="set-processes", summary="the supervisor's number of child processes",
                   args=(Count("N", high=64),), supervisor=_set_processes),
)
CONTROL: dict[str, ControlCommand] = {c.name: c for c in _COMMANDS}


def sticky_key(service: str, msg: ControlMessage) -> tuple[str, str] | None:
    """The key under which the supervisor remembers ``msg`` (None: not remembered). Messages with
    the same key supersede each other (freeze/start; add/delete of one command)."""
    command = CONTROL.get(msg.command)
    if command is None or command.sticky is None:
        return None
    sticky = command.sticky
    if sticky.per == "group":
        return (sticky.group, "")
    full = _full_name(service, msg.args[0] if msg.args else "")
    if sticky.per == "message":
        # every update is kept, in order: one the children refused must not hide an
        # earlier good one (replayed, the bad one is refused again and the good one stays)
        return (sticky.group, f"{full}:{msg.nonce}")
    return (sticky.group, full)


def instance_id(host: str, pid: int) -> str:
    """How the controller names one process (``--instance``) and the status table shows it."""
    return f"{host}:{pid}"


def addressed(msg: ControlMessage, me: str, group: str | None = None) -> bool:
    """Whether the process ``me`` acts on ``msg``: a message for every instance, for ``me``, or for
    ``group`` (a child's supervisor: a ``workup worker`` with all its processes)."""
    return msg.instance is None or msg.instance == me or (group is not None and msg.instance == group)


async def apply_in_child(target: ChildTarget, msg: ControlMessage, *, supervised: bool,
                         group: str | None = None) -> str | None:
    """Apply ``msg`` in a worker process; None: not ours to answer (our supervisor, ``group``, does)."""
    command = CONTROL.get(msg.command)
    if command is None:
        raise ControlError(f"unknown control command {msg.command!r}")
    if command.child is None:
        if supervised and (msg.instance is None or msg.instance == group):
            return None
        if supervised:  # addressed to this process alone, which cannot apply it
            raise ControlError(f"{msg.command} is applied by the supervisor"
                               + (f": address {group}" if group is not None else ""))
        raise ControlError("not running under a supervisor (start it with 'workup worker')")
    return await command.child(target, command.check_wire(msg.args), msg.source)


async def apply_in_supervisor(target: SupervisorTarget, msg: ControlMessage,
                              remember: Callable[[ControlMessage], None]) -> str | None:
    """Apply ``msg`` in the supervisor, or remember it for new children and stay silent (None):
    the children apply it and answer, their replies carrying their state."""
    command = CONTROL.get(msg.command)
    if command is None:
        raise ControlError("ignored by the supervisor")
    if command.supervisor is None:
        if command.sticky is not None:
            remember(msg)
        return None
    return await command.supervisor(target, command.check_wire(msg.args), msg.source)


# -- the signed message ------------------------------------------------------------------------
class ControlMessage(msgspec.Struct, frozen=True, kw_only=True):
    service: str
    command: str
    args: list[str] = []
    source: str | None = None     # update-command: the new module's Python source
    iat: float
    exp: float
    nonce: str
    instance: str | None = None   # one instance_id (a process, or a supervisor and its children)


class InstanceStatus(msgspec.Struct, kw_only=True):
    service: str
    host: str
    pid: int
    role: Literal["process", "supervisor"] = "process"
    supervisor: int | None = None     # the supervising process's pid, if any
    processes: int | None = None      # supervisor: target number of child processes
    children: list[int] = []
    max_threads: int = 0
    prefetch: int = 0
    db_pool_size: int | None = None
    frozen: bool = False
    enabled: list[str] = []
    versions: dict[str, str] = {}
    log_level: str = ""
    handled: int = 0
    in_flight: int = 0
    uptime: float = 0.0


class ControlReply(msgspec.Struct, kw_only=True, omit_defaults=True):
    ok: bool
    pid: int
    host: str
    detail: str = ""
    status: InstanceStatus | None = None


class ControlRefused(Exception):
    """A control message that must not be applied (never applied). :attr:`reason` is all the
    reply says (``bad signature``, ``malformed``, ``wrong service``, ``stale (...)``,
    ``replayed``); ``str()`` adds the detail, for the instance's log only."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def control_key(secret: str) -> jwk.JWK:
    """An HS256 key from any secret string (HS256 wants 256 bits; hashing gives exactly that)."""
    return jwk.JWK(kty="oct", k=base64url_encode(hashlib.sha256(secret.encode()).digest()))


_encode = msgspec.json.Encoder().encode
_decode_message = msgspec.json.Decoder(ControlMessage).decode


def sign(key: jwk.JWK, service: str, command: str, args: list[str] | tuple[str, ...] = (), *,
         source: str | None = None, validity: float = 30.0, now: float | None = None,
         instance: str | None = None) -> bytes:
    issued = time.time() if now is None else now
    msg = ControlMessage(service=service, command=command, args=list(args), source=source,
                         iat=issued, exp=issued + validity, nonce=secrets.token_hex(16), instance=instance)
    fields = msgspec.to_builtins(msg)
    if instance is None:
        del fields["instance"]  # a message for every instance reads as it did before targeting
    token = jws.JWS(_encode(fields))
    # json_encode({"alg": "HS256"}) written out: the jwcrypto stub types that argument str | bytes
    token.add_signature(key, None, '{"alg":"HS256"}')
    return token.serialize(compact=True).encode()


class Verifier:
    """Checks signature, service, freshness and nonce; remembers nonces until they expire.

    ``not_before`` (a process's start time): messages issued earlier (less :data:`CLOCK_SKEW`) are
    refused as replays. ``seen``: nonces (with their expiry) another verifier already accepted,
    :meth:`remembered` of the supervisor's for a child it starts."""

    def __init__(self, key: jwk.JWK, service: str, *, not_before: float | None = None,
                 seen: Mapping[str, float] | None = None) -> None:
        self._key = key
        self._service = service
        self._not_before = not_before
        self._seen: dict[str, float] = dict(seen or {})

    def remembered(self, now: float | None = None) -> dict[str, float]:
        """The nonces still inside their validity window, with their expiry."""
        now = time.time() if now is None else now
        return {nonce: exp for nonce, exp in self._seen.items() if exp >= now}

    def verify(self, payload: bytes, now: float | None = None) -> ControlMessage:
        now = time.time() if now is None else now
        token = jws.JWS()
        token.allowed_algs = ["HS256"]
        try:
            token.deserialize(payload.decode("ascii"))
            token.verify(self._key, alg="HS256")
        except (UnicodeDecodeError, JWException, ValueError) as exc:
            raise ControlRefused("bad signature", f"not an HS256 JWS under this key ({type(exc).__name__})") from None
        try:
            msg = _decode_message(token.payload)
        except msgspec.MsgspecError as exc:
            raise ControlRefused("malformed", str(exc)) from None
        if msg.service != self._service:
            raise ControlRefused("wrong service", f"message is for service {msg.service!r}")
        if msg.exp - msg.iat > MAX_WINDOW or msg.exp < msg.iat:
            raise ControlRefused("malformed", "validity window too long")
        if msg.iat > now + CLOCK_SKEW:
            raise ControlRefused("stale (issued in the future)", "check the clocks")
        if msg.exp < now:
            raise ControlRefused("stale (expired)")
        if self._not_before is not None and msg.iat < self._not_before - CLOCK_SKEW:
            raise ControlRefused("replayed", "issued before this instance started")
        self._seen = self.remembered(now)
        if msg.nonce in self._seen:
            raise ControlRefused("replayed", "nonce already seen")
        self._seen[msg.nonce] = msg.exp
        return msg
