"""A 200 MB upload to a real `workup media` process keeps its memory under 100 MB RSS."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx
import psutil
import trio

from .conftest import PASSWORD, USER

MIB = 1024 * 1024
UPLOAD_MB = 200
RSS_LIMIT = 100 * MIB
BOUNDARY = b"memory-test-boundary"


async def _port_from_log(stream: trio.abc.ReceiveStream) -> int:
    seen = b""
    with trio.fail_after(30):
        while not (m := re.search(rb"media server on [^\s]+:(\d+)", seen)):
            chunk = await stream.receive_some(4096)
            assert chunk, f"workup media exited before listening: {seen.decode(errors='replace')}"
            seen += chunk
    return int(m.group(1))


async def _body():
    """The multipart body, made on the fly: never more than one MiB of it exists at a time."""
    yield b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="filename"\r\n\r\nhuge\r\n'
    yield b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="resource"; filename="huge.pdf"\r\n\r\n'
    yield b"%PDF-1.7\n"
    block = bytes(range(256)) * (MIB // 256)
    for _ in range(UPLOAD_MB):
        yield block
    yield b"\r\n--" + BOUNDARY + b"--\r\n"


async def test_200mb_upload_stays_under_100mb_rss(tmp_path):
    env = dict(os.environ, UPLOAD_USER=USER, UPLOAD_PASSWORD=PASSWORD, WORKUP_LOG_LEVEL="INFO")
    storage = tmp_path / "media"
    cmd = [sys.executable, "-m", "workup", "media", "--port", "0", "--storage-dir", str(storage),
           "--data-dir", str(tmp_path), "--max-upload-mb", str(UPLOAD_MB + 10)]
    proc = await trio.lowlevel.open_process(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    peak = 0
    try:
        port = await _port_from_log(proc.stderr)
        ps = psutil.Process(proc.pid)
        done = trio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, ps.memory_info().rss)
                await trio.sleep(0.02)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample)
            async with httpx.AsyncClient(timeout=120) as client:
                with trio.fail_after(120):
                    r = await client.post(f"http://127.0.0.1:{port}/upload/attachments", auth=(USER, PASSWORD),
                                          content=_body(),
                                          headers={"Content-Type": "multipart/form-data; boundary=" + BOUNDARY.decode()})
            done.set()
        assert r.status_code == 201, r.text
        assert r.json()["path"] == "/static/attachments/huge.pdf"
        stored = storage / "attachments" / "huge.pdf"
        assert stored.stat().st_size == len(b"%PDF-1.7\n") + UPLOAD_MB * MIB
        with open(stored, "rb") as f:
            assert f.read(9) == b"%PDF-1.7\n"
            f.seek(-256, os.SEEK_END)
            assert f.read() == bytes(range(256))
        print(f"peak RSS during a {UPLOAD_MB} MB upload: {peak / MIB:.1f} MiB")
        assert 0 < peak < RSS_LIMIT, f"peak RSS {peak / MIB:.1f} MiB"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            with trio.move_on_after(10):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, f"workup media exited with {proc.returncode} on SIGTERM"
