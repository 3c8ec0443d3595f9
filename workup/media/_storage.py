"""The group directories on disk: safe opening for reads, listing, and atomic writes.

Reads open the file first and describe the open descriptor, so a concurrent upload that renames a
new file over the name cannot mix two versions in one response. Writes go to a hidden temporary
file in the same directory and are renamed into place, so a reader sees the old file or the new
one, never part of either. Hidden names (leading dot) are never served or listed.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ._http import make_etag
from ._sniff import SNIFF_BYTES, sniff, type_for_name

__all__ = ["Opened", "open_stored", "open_placeholder", "list_files", "TempUpload", "sweep_stale"]

_TEMP_PREFIX = ".upload-"
_TEMP_SUFFIX = ".part"
_STALE_SECONDS = 3600
_OCTET_STREAM = "application/octet-stream"


@dataclass
class Opened:
    """A regular file open for reading, with the validators of exactly what was opened."""

    file: BinaryIO
    size: int
    mtime: float
    etag: str
    content_type: str

    def read_at(self, offset: int, length: int) -> bytes:
        return os.pread(self.file.fileno(), length, offset)

    def close(self) -> None:
        self.file.close()


def _open(path: Path, *, follow_symlinks: bool, content_type: str | None) -> Opened | None:
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK  # O_NONBLOCK: a FIFO must not hang us
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
        return None
    except OSError as exc:  # ELOOP: a symlink where none is allowed counts as missing
        if exc.errno == errno.ELOOP:
            return None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        if content_type is None:
            content_type = type_for_name(path.name) or sniff(os.pread(fd, SNIFF_BYTES, 0)) or _OCTET_STREAM
    except BaseException:
        os.close(fd)
        raise
    file = os.fdopen(fd, "rb", buffering=0)
    return Opened(file, st.st_size, st.st_mtime, make_etag(st.st_size, st.st_mtime_ns, st.st_ino), content_type)


def open_stored(group_dir: Path, name: str) -> Opened | None:
    """The stored file ``name`` (already validated as a plain name), or ``None`` when missing."""
    if name.startswith("."):
        return None
    return _open(group_dir / name, follow_symlinks=False, content_type=None)


def open_placeholder(path: Path) -> Opened | None:
    """The operator's placeholder file; typed from its bytes so any name works."""
    try:
        with open(path, "rb") as f:
            content_type = sniff(f.read(SNIFF_BYTES)) or type_for_name(path.name) or _OCTET_STREAM
    except OSError:
        return None
    return _open(path, follow_symlinks=True, content_type=content_type)


def list_files(group_dir: Path) -> list[str]:
    try:
        with os.scandir(group_dir) as entries:
            return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return []


class TempUpload:
    """A hidden temporary file in a group directory; :meth:`commit` renames it into place."""

    def __init__(self, group_dir: Path) -> None:
        self.path = group_dir / f"{_TEMP_PREFIX}{secrets.token_hex(8)}{_TEMP_SUFFIX}"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        self._file: BinaryIO | None = os.fdopen(fd, "wb", buffering=0)

    def write(self, data: bytes) -> None:
        assert self._file is not None
        view = memoryview(data)
        while view:
            view = view[self._file.write(view):]

    def finish(self) -> None:
        """Flush to disk and close; the file can then be processed (resized) before :meth:`commit`."""
        if self._file is not None:
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def commit(self, name: str) -> None:
        self.finish()
        os.replace(self.path, self.path.parent / name)
        dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.path.unlink(missing_ok=True)


def sweep_stale(group_dir: Path, now: float | None = None) -> int:
    """Remove temporary files left by a crashed server (older than an hour); returns how many."""
    now = time.time() if now is None else now
    removed = 0
    with os.scandir(group_dir) as entries:
        for e in entries:
            if e.name.startswith(_TEMP_PREFIX) and e.name.endswith(_TEMP_SUFFIX):
                try:
                    if now - e.stat(follow_symlinks=False).st_mtime > _STALE_SECONDS:
                        os.unlink(e.path)
                        removed += 1
                except FileNotFoundError:
                    pass
    return removed
