"""CPU per request of the load generator's HTTP client (``workup/bench/http.py``) against httpx,
on the same keep-alive connection to a running WorkUp, one request in flight, each client in
turn (``docs/performance.md`` quotes the result):

    python perf/http_client_cost.py http://127.0.0.1:8080 [requests]

Only the client process's CPU time is measured (``time.process_time``), so the server's speed
and the machine's load matter little.
"""

from __future__ import annotations

import sys
import time

import httpx
import trio

from workup.bench.http import Client


async def main(base_url: str, n: int) -> None:
    path = "/api/v1/jobs/search?query=nothingmatchesthis&pageLimit=20"
    ours = Client(base_url)
    async with httpx.AsyncClient(base_url=base_url) as theirs:
        for _ in range(50):                        # warm both up, open their connections
            await ours.request("GET", path)
            await theirs.get(path)
        for name, call in (("workup.bench.http", lambda: ours.request("GET", path)),
                           ("httpx", lambda: theirs.get(path))):
            cpu0, t0 = time.process_time(), time.perf_counter()
            for _ in range(n):
                response = await call()
                assert response.status_code == 200 if name == "httpx" else response.status == 200
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
            print(f"{name:18} {cpu / n * 1e6:7.0f} µs CPU per request  ({n / wall:,.0f} requests/s wall)")
    await ours.aclose()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
