"""Log set-up for every role: ``--log-format text`` (a line for people) or ``json`` (one object a
line for a log pipeline), with the same fields in every role: ``time``, ``level``, ``role``,
``service``, ``instance``, ``request_id``, ``logger``, ``message`` (and ``exc`` with a traceback).

The request id is the one the gateway answers in ``X-Request-Id``; the transport's envelope
carries it to the worker, whose dispatch binds it (:func:`bind_request_id`) for the task handling
the request, so every line logged while handling it names it. ``service`` is bound the same way
by the instance that runs it: ``workup up`` runs every service in one process.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from contextvars import ContextVar
from typing import TextIO

import msgspec

from .ids import rfc3339
from .settings import LOG_FORMATS

__all__ = ["configure_logging", "bind_request_id", "bind_service"]

_request_id: ContextVar[str | None] = ContextVar("workup_request_id", default=None)
_service: ContextVar[str | None] = ContextVar("workup_service", default=None)


class _LogLine(msgspec.Struct, omit_defaults=True):
    """One JSON log line; the fields are the same in every role (``None`` when not known)."""
    time: str
    level: str
    role: str
    service: str | None
    instance: str
    request_id: str | None
    logger: str
    message: str
    exc: str | None = None


def bind_request_id(request_id: str | None) -> None:
    """Name ``request_id`` in every line this task (and the tasks it starts) logs from now on."""
    _request_id.set(request_id)


def bind_service(service: str | None) -> None:
    """Name ``service`` in every line this task (and the tasks it starts) logs from now on."""
    _service.set(service)


class _Fields(logging.Filter):
    """Puts role, service, instance and request id on every record, read when it is logged (the
    context of the task that logs it)."""

    def __init__(self, role: str, service: str | None, instance: str) -> None:
        super().__init__()
        self.role, self.service, self.instance = role, service, instance

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = self.role
        record.service = _service.get() or self.service
        record.instance = self.instance
        record.request_id = _request_id.get()
        return True


class _JsonFormatter(logging.Formatter):
    """The fields of a record that went through the :class:`_Fields` filter, as one JSON object."""
    _encode = msgspec.json.Encoder().encode

    def format(self, record: logging.LogRecord) -> str:
        exc = self.formatException(record.exc_info) if record.exc_info else None
        line = _LogLine(time=rfc3339(int(record.created * 1000)), level=record.levelname,
                        role=getattr(record, "role", ""), service=getattr(record, "service", None),
                        instance=getattr(record, "instance", ""), request_id=getattr(record, "request_id", None),
                        logger=record.name, message=record.getMessage(), exc=exc)
        return self._encode(line).decode()


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [request {rid}]" if rid else line


class _Handler(logging.StreamHandler):
    """The handler configure_logging installs (a later call replaces it). Without a stream of its
    own it writes to whatever ``sys.stderr`` is at each line, so a caller that swapped stderr for a
    while (click's test runner, pytest's capture) leaves no handler on a closed stream."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._own_stream = stream is not None

    def emit(self, record: logging.LogRecord) -> None:
        if not self._own_stream:
            self.stream = sys.stderr
        super().emit(record)


def instance_name() -> str:
    """``host:pid``, the form ``workup control`` shows an instance by."""
    return f"{socket.gethostname()}:{os.getpid()}"


def configure_logging(role: str, *, level: str = "INFO", fmt: str = "text", service: str | None = None,
                      stream: TextIO | None = None) -> logging.Handler:
    """Give the root logger one handler writing ``fmt`` lines to ``stream`` (stderr), in place of
    one an earlier call installed; handlers of others (pytest's capture) are left alone."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    handler = _Handler(stream)
    handler.addFilter(_Fields(role, service, instance_name()))
    who = f"{service}[%(process)d]" if service else role   # the text lines each role wrote before
    handler.setFormatter(_JsonFormatter() if fmt == "json" else
                         _TextFormatter(f"%(asctime)s {who} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in root.handlers[:]:
        if isinstance(old, _Handler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
