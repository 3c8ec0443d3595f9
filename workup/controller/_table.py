"""What ``workup control`` prints (pure: answers in, text and exit code out): the ``status``
table, one line per answer for the other commands, the ``--json`` form, and the verdict."""

from __future__ import annotations

from typing import Sequence

import msgspec

from ..runtime.control import ControlReply, InstanceStatus, instance_id

__all__ = ["Answer", "status_rows", "render_table", "render_lines", "render_json", "verdict"]

COLUMNS = ("SERVICE", "HOST", "PID", "SUPERVISOR", "PROCS", "THREADS", "POOL", "FROZEN", "COMMANDS",
           "VERSIONS", "HANDLED", "UPTIME", "ID")


class Answer(msgspec.Struct, frozen=True):
    """One reply and the service it was sent to (a refused reply does not say)."""

    service: str
    reply: ControlReply


def _versions(st: InstanceStatus) -> str:
    changed = [f"{name.partition('.')[2]}={v}" for name, v in st.versions.items() if not v.startswith("v1:")]
    return ",".join(changed) or "v1"


def _commands(st: InstanceStatus) -> str:
    total = len(st.versions)
    disabled = sorted(set(st.versions) - set(st.enabled))
    if not disabled:
        return f"all {total}"
    return f"{len(st.enabled)}/{total} -" + ",-".join(n.partition(".")[2] for n in disabled)


def _uptime(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


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


def _failed(answers: Sequence[Answer]) -> list[Answer]:
    return sorted((a for a in answers if not a.reply.ok), key=lambda a: (a.service, a.reply.host, a.reply.pid))


def render_table(rows: Sequence[InstanceStatus], answers: Sequence[Answer] = ()) -> str:
    """The status table; each instance that refused (or failed) the message gets a row of its own
    whose reason spans the columns after SUPERVISOR."""
    cells = [COLUMNS]
    for st in rows:
        id_ = instance_id(st.host, st.pid)
        if st.role == "supervisor":
            cells.append((st.service, st.host, str(st.pid), "-", str(st.processes), "-", "-", "-",
                          "(no live process)", "-", "-", _uptime(st.uptime), id_))
            continue
        cells.append((
            st.service, st.host, str(st.pid), str(st.supervisor or "-"),
            str(st.processes if st.processes is not None else 1), str(st.max_threads),
            "-" if st.db_pool_size is None else str(st.db_pool_size),
            "yes" if st.frozen else "no", _commands(st), _versions(st), str(st.handled),
            _uptime(st.uptime), id_))
    failed = [(a.service, a.reply.host, str(a.reply.pid), "-", a.reply.detail) for a in _failed(answers)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    for i in range(4):
        widths[i] = max([widths[i], *(len(row[i]) for row in failed)])
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [*cells, *failed]]
    return "\n".join(lines)


def render_lines(answers: Sequence[Answer]) -> str:
    """One line per answer: ``SERVICE HOST:PID ok|FAILED DETAIL``."""
    ordered = sorted(answers, key=lambda a: (a.service, a.reply.host, a.reply.pid))
    return "\n".join(f"{a.service} {instance_id(a.reply.host, a.reply.pid)} "
                     f"{'ok' if a.reply.ok else 'FAILED'} {a.reply.detail}".rstrip() for a in ordered)


def render_json(answers: Sequence[Answer]) -> str:
    """The replies as a JSON list, each with the service it came from."""
    return msgspec.json.encode([{"service": a.service, **msgspec.to_builtins(a.reply)} for a in answers]).decode()


def verdict(answers: Sequence[Answer], *, timeout: float, instance: str | None = None) -> tuple[int, str | None]:
    """The exit code (0: every answer ok; 1: one failed or was refused, or none came) and the
    line for stderr that says why (None when all is well)."""
    if not answers:
        who = f"instance {instance}" if instance is not None else "instance"
        return 1, f"no {who} answered within {timeout:g}s"
    refused = [a for a in answers if not a.reply.ok and a.reply.detail.startswith("refused: ")]
    if refused:
        reasons = sorted({a.reply.detail.removeprefix("refused: ") for a in refused})
        hint = (" (is WORKUP_CONTROL_KEY, or --data-dir's control.key, the workers' key?)"
                if "bad signature" in reasons else "")
        return 1, f"{len(refused)} of {len(answers)} instances refused the message: {', '.join(reasons)}{hint}"
    failed = [a for a in answers if not a.reply.ok]
    if failed:
        return 1, f"{len(failed)} of {len(answers)} instances answered with a failure"
    return 0, None
