"""Run a command with a larger timer slack: ``python3 timerslack.py NANOSECONDS CMD ARGS...``.

Cassandra's request stages (its shared executor pool: Native-Transport-Requests, MutationStage,
ReadStage) keep an idle worker spinning between requests, parked for 10 µs at a time: with any
traffic at all that is tens of thousands of wake-ups a second, a quarter to half of a core on this
2-core machine whatever the request rate. A timer slack of 0.5 ms (Linux ``PR_SET_TIMERSLACK``,
kept across ``exec`` and inherited by every thread) lets the kernel group those wake-ups: the node's
CPU at 100-400 statements/s fell to 0.5-0.65x with the same p50 per statement (measured on
private nodes, ``docs/performance.md``). Nothing else changes: the slack only delays timer
expiries of this process, by at most that much.
"""

import ctypes
import os
import sys

PR_SET_TIMERSLACK = 29

if __name__ == "__main__":
    if len(sys.argv) < 3 or not sys.argv[1].isdigit():
        sys.exit("usage: timerslack.py NANOSECONDS COMMAND [ARGS...]")
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, int(sys.argv[1]), 0, 0, 0) != 0:
        sys.exit(f"timerslack.py: prctl(PR_SET_TIMERSLACK) failed: {os.strerror(ctypes.get_errno())}")
    os.execv(sys.argv[2], sys.argv[2:])
