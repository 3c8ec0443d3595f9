"""The embedded system's admin channel: how ``workup control`` and ``workup scale --provider local``
reach a ``workup up`` that runs on the in-process transport, where there is no broker.

``workup up`` listens on a Unix socket in its data directory (:func:`admin_socket`); the controller
finds it from ``--data-dir``. One request per connection, each way a 4-byte big-endian length and
a msgpack struct. The request carries a control message signed exactly as on the broker
(``sign`` in ``workup/runtime/control.py``); ``workup up`` hands it unopened to the service's
control fanout (:meth:`~workup.transport.local.LocalTransport.broadcast_control`) and answers
the raw replies. So each instance checks signature, service, freshness and nonce itself, with the
same :class:`~workup.runtime.control.Verifier` as on the broker: a badly signed, stale or
replayed message is refused per instance, never by the channel. The socket is made owner-only.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from pathlib import Path
import msgspec
import trio

from ..runtime.control import MAX_SOURCE, MAX_WINDOW
from ._client import ControlBus

__all__ = ["ADMIN_SOCKET", "admin_socket", "serve_admin", "AdminClient", "AdminUnreachable"]

log = logging.getLogger("workup.controller.admin")

ADMIN_SOCKET = "admin.sock"
_MAX_FRAME = 4 * MAX_SOURCE    # a signed update-command (base64 of the source) and its envelope
_LENGTH = struct.Struct(">I")
_MAX_PATH = 100                # sun_path is 108 bytes on Linux, 104 on the BSDs


class AdminRequest(msgspec.Struct, frozen=True, kw_only=True):
    service: str
    payload: bytes             # a signed control message, as published on the broker
    timeout: float
    expect: int | None = None


class AdminReply(msgspec.Struct, frozen=True, kw_only=True):
    replies: list[bytes] = []  # each instance's ControlReply, JSON, as on the broker
    error: str = ""            # the request itself was unreadable


class AdminUnreachable(ConnectionError):
    """No ``workup up`` answers on the socket; ``str()`` is the one line the CLI prints."""


class _BadFrame(Exception):
    pass


def admin_socket(data_dir: Path) -> Path:
    return data_dir / ADMIN_SOCKET


async def _read_exactly(stream: trio.abc.ReceiveStream, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = await stream.receive_some(min(65536, size - len(buf)))
        if not chunk:
            raise _BadFrame("connection closed mid-message")
        buf += chunk
    return bytes(buf)


async def _read_frame(stream: trio.abc.ReceiveStream) -> bytes:
    (size,) = _LENGTH.unpack(await _read_exactly(stream, _LENGTH.size))
    if size > _MAX_FRAME:
        raise _BadFrame(f"message of {size} bytes, above {_MAX_FRAME}")
    return await _read_exactly(stream, size)


def _frame(body: bytes) -> bytes:
    return _LENGTH.pack(len(body)) + body


_decode_request = msgspec.msgpack.Decoder(AdminRequest).decode
_decode_reply = msgspec.msgpack.Decoder(AdminReply).decode
_encode = msgspec.msgpack.Encoder().encode


# -- the server, in `workup up` ---------------------------------------------------------------
async def serve_admin(fanout: ControlBus, path: Path, *,
                      task_status: trio.TaskStatus[Path | None] = trio.TASK_STATUS_IGNORED) -> None:
    """Answer admin requests on the Unix socket ``path`` until cancelled (``fanout``: the
    ``LocalTransport``, whose ``broadcast_control`` is the controller's bus call); ``started(path)``, or
    ``started(None)`` when the channel cannot be opened (the system still runs, uncontrollable)."""
    sock = await _bind(path)
    if sock is None:
        task_status.started(None)
        return
    listener = trio.SocketListener(sock)

    async def handler(stream: trio.SocketStream) -> None:
        await _answer(fanout, stream)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started(path)
            await trio.serve_listeners(handler, [listener], handler_nursery=nursery)
    finally:
        with trio.CancelScope(shield=True):
            await listener.aclose()
        path.unlink(missing_ok=True)


async def _bind(path: Path) -> trio.socket.SocketType | None:
    if len(os.fsencode(path)) > _MAX_PATH:
        log.warning("admin channel off: the socket path %s is too long for a Unix socket; "
                    "use a shorter --data-dir to control this system", path)
        return None
    if path.exists():
        try:  # a live `workup up` on this data dir keeps its channel; a dead one's socket goes
            await AdminClient(path).ping()
        except AdminUnreachable:
            path.unlink(missing_ok=True)
        else:
            log.warning("admin channel off: another workup up answers on %s", path)
            return None
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(os.fspath(path))
        os.chmod(path, 0o600)   # only the data directory's owner may even knock
        sock.listen(16)
    except OSError as exc:
        sock.close()
        log.warning("admin channel off: cannot listen on %s: %s", path, exc.strerror)
        return None
    return sock


async def _answer(fanout: ControlBus, stream: trio.abc.Stream) -> None:
    async with stream:
        try:
            with trio.move_on_after(MAX_WINDOW + 10):   # a silent client holds nothing for long
                try:
                    request = _decode_request(await _read_frame(stream))
                except (_BadFrame, msgspec.DecodeError) as exc:
                    await stream.send_all(_frame(_encode(AdminReply(error=f"unreadable request: {exc}"))))
                    return
                # the instances decide everything else: signature, service, freshness, replay
                replies = await fanout.broadcast_control(
                    request.service, request.payload, timeout=min(max(request.timeout, 0.0), MAX_WINDOW),
                    expect=request.expect)
                await stream.send_all(_frame(_encode(AdminReply(replies=replies))))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the controller went away before its answer


# -- the client, in `workup control` and `workup scale` ---------------------------------------
class AdminClient:
    """The controller's bus (``ControlBus``) to an embedded ``workup up`` through its socket."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def broadcast_control(self, service: str, payload: bytes, *, timeout: float,
                                expect: int | None = None) -> list[bytes]:
        reply = await self._ask(AdminRequest(service=service, payload=payload, timeout=timeout, expect=expect),
                                wait=timeout + 10)
        return reply.replies

    async def ping(self) -> None:
        """Raise :class:`AdminUnreachable` unless a ``workup up`` answers (an empty request)."""
        await self._ask(AdminRequest(service="", payload=b"", timeout=0.0), wait=5.0)

    async def _ask(self, request: AdminRequest, *, wait: float) -> AdminReply:
        try:
            stream = await trio.open_unix_socket(os.fspath(self.path))
        except OSError as exc:
            raise AdminUnreachable(f"no workup up answers on {self.path} ({exc.strerror}); "
                                   f"start it, or give its --data-dir") from None
        async with stream:
            try:
                with trio.fail_after(wait):
                    await stream.send_all(_frame(_encode(request)))
                    reply = _decode_reply(await _read_frame(stream))
            except (trio.TooSlowError, trio.BrokenResourceError, _BadFrame, msgspec.DecodeError) as exc:
                raise AdminUnreachable(f"workup up on {self.path} did not answer ({exc or type(exc).__name__})") from None
        if reply.error:
            raise AdminUnreachable(f"workup up on {self.path}: {reply.error}")
        return reply
