"""Render ``status`` replies as a table (pure: replies in, text out)."""

from __future__ import annotations

from typing import Sequence

from ..runtime.control import ControlReply, InstanceStatus

__all__ = ["status_rows", "render_table"]

COLUMNS = ("SERVICE", "HOST", "PID", "SUPERVISOR", "PROCS", "THREADS", "POOL", "FROZEN", "COMMANDS",
           "VERSIONS", "HANDLED", "UPTIME")


def _versions(st: InstanceStatus) -> str:
    changed = [f"{name.partition('.')[2]}={v}" for name, v in st.versions.items() if not v.startswith("v1:")]
    return ",".join(changed) or "v1"


def _commands(st: InstanceStatus) -> str:
    total = len(st.versions)
    disabled = sorted(set(st.versions) - set(st.enabled))
    if not disabled:
        return f"all {total}"
    return f"{len(st.enabled)}/{total} -" + ",-".join(n.partition(".")[2] for n in disabled)


def status_rows(replies: Sequence[ControlReply]) -> list[InstanceStatus]:
    """One row per worker process, sorted by host and pid; a process under a supervisor shows
    the supervisor's process count (supervisors themselves appear only when childless)."""
    statuses = [r.status for r in replies if r.status is not None]
    supervisors = {(s.host, s.pid): s for s in statuses if s.role == "supervisor"}
    rows = []
    covered = set()
    for st in statuses:
        if st.role == "supervisor":
            continue
        sup = supervisors.get((st.host, st.supervisor)) if st.supervisor is not None else None
        if sup is not None:
            covered.add((sup.host, sup.pid))
            st.processes = sup.processes
        rows.append(st)
    rows.extend(s for key, s in supervisors.items() if key not in covered)
    return sorted(rows, key=lambda s: (s.service, s.host, s.pid))


def render_table(rows: Sequence[InstanceStatus]) -> str:
    cells = [COLUMNS]
    for st in rows:
        if st.role == "supervisor":
            cells.append((st.service, st.host, str(st.pid), "-", str(st.processes), "-", "-", "-",
                          "(no live process)", "-", "-", f"{st.uptime:.0f}s"))
            continue
        cells.append((
            st.service, st.host, str(st.pid), str(st.supervisor or "-"),
            str(st.processes if st.processes is not None else 1), str(st.max_threads),
            "-" if st.db_pool_size is None else str(st.db_pool_size),
            "yes" if st.frozen else "no", _commands(st), _versions(st), str(st.handled),
            f"{st.uptime:.0f}s"))
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)
