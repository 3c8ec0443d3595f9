"""A worker's liveness file, shared by the supervisor that touches it and ``workup worker SERVICE
--check`` (a container health check) that reads it. Standard library only: the check runs every
few seconds in each container and must start fast."""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["HEARTBEAT_EVERY", "HEARTBEAT_STALE", "heartbeat_path", "heartbeat_age"]

# the supervisor touches the file this often while its loop runs and a child lives; a file older
# than HEARTBEAT_STALE seconds means the worker is not alive
HEARTBEAT_EVERY, HEARTBEAT_STALE = 5.0, 30.0


def heartbeat_path(data_dir: str, service: str) -> Path:
    return Path(data_dir) / f"worker-{service}.alive"


def heartbeat_age(path: Path) -> float | None:
    """Seconds since the last heartbeat in ``path``, ``None`` when there is none."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except OSError:
        return None
