"""Receiving one upload: multipart parsed incrementally, the resource streamed to a temporary file.

Memory stays bounded whatever the upload's size: the body arrives in chunks (see ``_flow``), the
sans-IO multipart decoder keeps at most a boundary's worth of bytes between chunks, and file data is
written out in batches of :data:`_WRITE_BATCH` bytes.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import AsyncIterator

import trio
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData, Preamble

from ..problems import ProblemError, bad_request
from ._config import GroupConfig
from ._names import BadName, stored_stem
from ._resize import BadImage, resize_file
from ._sniff import SNIFF_BYTES, extension_for, sniff
from ._storage import TempUpload

__all__ = ["FORM_OVERHEAD", "IDLE_TIMEOUT", "too_large", "receive_upload"]

FORM_OVERHEAD = 64 * 1024  # multipart framing and the other fields, allowed on top of the file limit
IDLE_TIMEOUT = 30.0  # seconds without a byte from the client before giving up (408)
_WRITE_BATCH = 256 * 1024
_DECODER_BUFFER = 1024 * 1024
_FEED = 64 * 1024
_MAX_PARTS = 16
_MAX_FILENAME_BYTES = 4096


def too_large(limit: int) -> ProblemError:
    return ProblemError(413, f"the upload is larger than the limit of {limit} bytes")


async def _next_chunk(body: AsyncIterator[bytes]) -> bytes | None:
    """The next piece of the body (``None`` at its end); 408 when the client goes quiet."""
    with trio.move_on_after(IDLE_TIMEOUT):
        try:
            return await body.__anext__()
        except StopAsyncIteration:
            return None
    raise ProblemError(408, f"no data from the client for {IDLE_TIMEOUT:g} s")


class _Receiver:
    def __init__(self, group: GroupConfig, group_dir: Path, limit: int, limiter: trio.CapacityLimiter) -> None:
        self.group = group
        self.group_dir = group_dir
        self.limit = limit
        self.limiter = limiter
        self.part: str | None = None
        self.temp: TempUpload | None = None
        self.head = bytearray()
        self.mime_type: str | None = None
        self.size = 0
        self.pending = bytearray()
        self.filename_bytes: bytearray | None = None
        self.stem: str | None = None

    async def _thread(self, fn, *args):
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def on_event(self, event: object) -> None:
        if isinstance(event, (Field, File)):
            await self._start_part(event.name)
        elif isinstance(event, Data):
            await self._data(event.data, event.more_data)

    async def _start_part(self, name: str) -> None:
        if name == "resource":
            if self.temp is not None:
                raise bad_request("more than one 'resource' in the body")
            self.temp = await self._thread(TempUpload, self.group_dir)
        elif name == "filename":
            if self.filename_bytes is not None:
                raise bad_request("more than one 'filename' in the body")
            self.filename_bytes = bytearray()
        self.part = name

    async def _data(self, data: bytes, more: bool) -> None:
        if self.part == "resource":
            await self._resource_data(data, more)
        elif self.part == "filename":
            assert self.filename_bytes is not None
            self.filename_bytes += data
            if len(self.filename_bytes) > _MAX_FILENAME_BYTES:
                raise bad_request("'filename' is too long")
            if not more:
                self._filename_done()

    async def _resource_data(self, data: bytes, more: bool) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise too_large(self.limit)
        if self.mime_type is None:
            self.head += data[: SNIFF_BYTES - len(self.head)]
            if len(self.head) >= SNIFF_BYTES or not more:
                self._check_type()
        self.pending += data
        if len(self.pending) >= _WRITE_BATCH or not more:
            await self._flush()

    def _check_type(self) -> None:
        if not self.head:
            raise bad_request("'resource' is empty")
        found = sniff(bytes(self.head))
        allowed = self.group.mime_types
        if found not in allowed:
            what = f"{found} content" if found else "content of an unrecognised type"
            raise bad_request(f"group '{self.group.name}' accepts {', '.join(allowed)}; the resource is {what}")
        self.mime_type = found

    def _filename_done(self) -> None:
        assert self.filename_bytes is not None
        try:
            self.stem = stored_stem(self.filename_bytes.decode("utf-8"))
        except UnicodeDecodeError:
            raise bad_request("'filename' is not UTF-8 text") from None
        except BadName as exc:
            raise bad_request(f"'filename': {exc}") from None

    async def _flush(self) -> None:
        if self.pending:
            assert self.temp is not None
            data, self.pending = bytes(self.pending), bytearray()
            await self._thread(self.temp.write, data)

    async def finish(self) -> str:
        if self.temp is None:
            raise bad_request("the body must include 'resource' (the file)")
        if self.filename_bytes is None:
            raise bad_request("the body must include 'filename'")
        if self.mime_type is None:
            self._check_type()
        assert self.mime_type is not None and self.stem is not None
        await self._thread(self.temp.finish)
        if self.group.resize is not None:
            try:
                await self._thread(resize_file, self.temp.path, self.mime_type, self.group.resize)
            except BadImage as exc:
                raise bad_request(str(exc)) from None
        name = f"{self.stem}.{extension_for(self.mime_type)}"
        await self._thread(self.temp.commit, name)
        self.temp = None
        return name

    async def discard(self) -> None:
        if self.temp is not None:
            temp, self.temp = self.temp, None
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(temp.discard)


async def receive_upload(
    body: AsyncIterator[bytes], boundary: bytes, *, group: GroupConfig, group_dir: Path,
    limit: int, limiter: trio.CapacityLimiter,
) -> str:
    """Store the upload in ``group_dir`` and return the stored file name; a :class:`ProblemError`
    (400, 408, 413) otherwise, with nothing left behind on disk."""
    decoder = MultipartDecoder(boundary, _DECODER_BUFFER, max_parts=_MAX_PARTS)
    receiver = _Receiver(group, group_dir, limit, limiter)
    received = 0

    async def drain() -> None:
        while True:
            event = decoder.next_event()
            if isinstance(event, NeedData) or isinstance(event, Epilogue):
                return
            if not isinstance(event, Preamble):
                await receiver.on_event(event)

    try:
        try:
            while (chunk := await _next_chunk(body)) is not None:
                received += len(chunk)
                if received > limit + FORM_OVERHEAD:
                    raise too_large(limit)
                view = memoryview(chunk)
                for start in range(0, len(view), _FEED):  # keep the decoder's buffer small
                    decoder.receive_data(view[start:start + _FEED])  # type: ignore[arg-type]
                    await drain()
            decoder.receive_data(None)
            await drain()
        except ValueError as exc:  # the decoder's verdict on malformed multipart
            raise bad_request(f"malformed multipart body: {exc}") from None
        except RequestEntityTooLarge:
            raise bad_request("malformed multipart body: too many parts or an oversized header") from None
        return await receiver.finish()
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ProblemError(507, "no space left to store the upload") from None
        raise
    finally:
        await receiver.discard()
