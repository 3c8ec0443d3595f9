"""A real media server per test, in-process on a free port, with its storage in a temporary dir."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
from PIL import Image

from workup.media import MediaConfig, media_config, serve_media

USER = "uploader"
PASSWORD = "s3cret: pass"  # a colon and a space in the password must work
LIMIT_MB = 1


@dataclass
class Media:
    config: MediaConfig
    port: int
    client: httpx.AsyncClient
    root: Path  # the test's temporary directory; storage is root/data/media

    @property
    def storage(self) -> Path:
        return self.config.storage_path

    def group_dir(self, group: str) -> Path:
        return self.storage / group

    async def upload(self, group: str, content: bytes, filename: str, *, auth=(USER, PASSWORD), **kw) -> httpx.Response:
        return await self.client.post(f"/upload/{group}", auth=auth, files={"resource": ("blob", content)},
                                      data={"filename": filename}, **kw)

    async def raw(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send exactly these bytes (no client-side normalisation) and read the whole answer."""
        return await raw_request(self.port, request)


async def raw_request(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(request)
            data = bytearray()
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def get(path: str) -> bytes:
    """A raw GET whose request target is sent byte for byte as given."""
    return f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode("latin-1")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def png(width: int = 8, height: int = 8, color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(width: int = 8, height: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buf, format="JPEG")
    return buf.getvalue()


def pdf(payload: bytes = b"hello") -> bytes:
    return b"%PDF-1.4\n" + payload + b"\n%%EOF\n"


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file under root with its content (to prove nothing else was written)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


async def start_media(nursery: trio.Nursery, config: MediaConfig) -> int:
    return await nursery.start(partial(serve_media, config, host="127.0.0.1", port=0))


@pytest.fixture
async def media(nursery, tmp_path):
    config = media_config(tmp_path / "data", upload_user=USER, upload_password=PASSWORD, max_upload_mb=LIMIT_MB)
    port = await start_media(nursery, config)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
        yield Media(config, port, client, tmp_path)
