"""spawn-machine: the DigitalOcean provider against a local fake of its API, and the local one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import trio

from ._cluster import cluster


class FakeDigitalOcean(BaseHTTPRequestHandler):
    requests: list[tuple[str, dict[str, str], dict]] = []
    status = 202

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeDigitalOcean.requests.append((self.path, dict(self.headers), body))
        if self.headers.get("Authorization") != "Bearer do-token" or self.status != 202:
            out, code = {"id": "unauthorized", "message": "Unable to authenticate you"}, 401
        else:
            out, code = {"droplet": {"id": 3164444, "name": body["name"], "status": "new"}}, 202
        raw = json.dumps(out).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


def run_control(*args, token="do-token", api=None):
    env = dict(os.environ, DIGITALOCEAN_TOKEN=token)
    return subprocess.run([sys.executable, "-m", "workup", "control", "all", "spawn-machine", *args,
                           "--do-api-url", api], env=env, capture_output=True, text=True, timeout=60)


def test_spawn_digitalocean_against_a_fake_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeDigitalOcean)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        r = run_control("--provider", "digitalocean", "--name", "node-7", "--swarm-token", "SWMTKN-1-abc",
                        "--swarm-manager", "10.0.0.2:2377", api=api)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "droplet 3164444 node-7 new"
        path, headers, body = FakeDigitalOcean.requests[-1]
        assert path == "/v2/droplets" and headers["Authorization"] == "Bearer do-token"
        assert body["name"] == "node-7" and body["image"] == "ubuntu-24-04-x64"
        assert body["user_data"].startswith("#cloud-config")
        assert "docker.io" in body["user_data"]
        assert "docker swarm join --token SWMTKN-1-abc 10.0.0.2:2377" in body["user_data"]

        r = run_control("--provider", "digitalocean", "--swarm-token", "t", "--swarm-manager", "m:2377",
                        token="wrong", api=api)
        assert r.returncode == 1 and "Unable to authenticate you" in r.stderr and "Traceback" not in r.stderr

        r = run_control("--provider", "digitalocean", api=api)
        assert r.returncode == 2 and "--swarm-token" in r.stderr
    finally:
        server.shutdown()


async def test_spawn_local_replica_joins_the_broker(tmp_path):
    async with cluster(tmp_path) as c:
        r = await trio.run_process(
            [sys.executable, "-m", "workup", "control", "echo", "spawn-machine", "--provider", "local",
             "--name", "replica1"], env=c.env, capture_stdout=True, capture_stderr=True, check=False)
        assert r.returncode == 0, r.stderr
        pids = (tmp_path / "data" / "replicas" / "replica1" / "pids").read_text().split()
        assert pids[0] == "echo"
        try:
            replies = await c.processes(1)
            assert replies[0].status.supervisor == int(pids[1])
        finally:
            os.kill(int(pids[1]), signal.SIGTERM)
            with trio.fail_after(15):
                while subprocess.run(["kill", "-0", pids[1]], capture_output=True).returncode == 0:
                    await trio.sleep(0.1)
