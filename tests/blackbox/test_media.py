"""Media server per docs/api.md (its own port): describe, static with placeholders, upload rules."""

from __future__ import annotations

import struct
import uuid
import zlib

import httpx
import pytest

from ._harness import Running, expect

GROUPS = {"icons": ["image/png"], "photos": ["image/jpeg", "image/png"], "resume": ["application/pdf"],
          "attachments": ["application/pdf"]}
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00\xff\x00\x00" * 2)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


PNG = _png()


@pytest.fixture(scope="module")
def upload_auth(system: Running) -> tuple[str, str]:
    return system.env["UPLOAD_USER"], system.env["UPLOAD_PASSWORD"]


def _upload(media: httpx.Client, group: str, name: str, content: bytes, mime: str,
            auth: tuple[str, str] | None) -> httpx.Response:
    return media.post(f"/upload/{group}", data={"filename": name}, files={"resource": (name, content, mime)}, auth=auth)


def test_describe(media: httpx.Client) -> None:
    body = expect(media.get("/describe"), 200)
    assert (body["success"], body["path"]) == (True, "/static/"), body
    assert set(GROUPS) <= set(body["groups"]) and all(isinstance(g, str) for g in body["groups"]), body


@pytest.mark.parametrize("group", GROUPS)
def test_describe_group(media: httpx.Client, group: str) -> None:
    body = expect(media.get(f"/describe/{group}"), 200)
    assert (body["success"], body["path"]) == (True, f"/static/{group}/"), body
    assert body["mimeType"] == GROUPS[group][0] and sorted(body["mimeTypes"]) == sorted(GROUPS[group]), body
    assert isinstance(body["files"], list) and all(isinstance(f, str) for f in body["files"]), body


def test_unknown_group_404(media: httpx.Client, upload_auth: tuple[str, str]) -> None:
    assert media.get("/describe/nope").status_code == 404
    assert media.get("/static/nope/x.png").status_code == 404


@pytest.mark.parametrize("group", GROUPS)
def test_placeholder_for_missing_file(media: httpx.Client, group: str) -> None:
    r = media.get(f"/static/{group}/missing-{uuid.uuid4().hex[:6]}.bin")
    assert r.status_code == 200 and r.headers.get("X-Placeholder", "").lower() == "true", (r.status_code, r.headers)
    assert r.headers["content-type"].split(";")[0] in GROUPS[group] and r.content, r.headers


def test_upload_then_serve_with_etag_and_range(media: httpx.Client, upload_auth: tuple[str, str]) -> None:
    stem = f"My Photo {uuid.uuid4().hex[:6].upper()}"
    r = _upload(media, "photos", stem, PNG, "image/png", upload_auth)
    body = expect(r, 201)
    assert body == {"success": True, "path": f"/static/photos/{stem.lower().replace(' ', '_')}.png"}, body
    got = media.get(body["path"])
    assert got.status_code == 200 and got.content == PNG and got.headers["content-type"].startswith("image/png")
    assert got.headers.get("X-Placeholder", "false").lower() != "true"
    etag = got.headers["ETag"]
    assert media.get(body["path"], headers={"If-None-Match": etag}).status_code == 304
    part = media.get(body["path"], headers={"Range": "bytes=0-7"})
    assert part.status_code == 206 and part.content == PNG[:8], (part.status_code, part.headers)
    assert body["path"].rsplit("/", 1)[1] in expect(media.get("/describe/photos"), 200)["files"]


def test_upload_name_sanitised(media: httpx.Client, upload_auth: tuple[str, str]) -> None:
    body = expect(_upload(media, "resume", f"../../Etc/Pass Wd{uuid.uuid4().hex[:4]}", PDF, "application/pdf", upload_auth), 201)
    name = body["path"][len("/static/resume/"):]
    assert body["path"].startswith("/static/resume/") and name.endswith(".pdf"), body
    assert "/" not in name and "\\" not in name and ".." not in name and " " not in name and name == name.lower(), name


def test_upload_credentials_401(media: httpx.Client, upload_auth: tuple[str, str]) -> None:
    assert _upload(media, "photos", "a", PNG, "image/png", None).status_code == 401
    assert _upload(media, "photos", "a", PNG, "image/png", (upload_auth[0], "wrong")).status_code == 401


def test_upload_bad_requests_400(media: httpx.Client, upload_auth: tuple[str, str]) -> None:
    assert media.post("/upload/photos", json={"filename": "x"}, auth=upload_auth).status_code == 400
    assert media.post("/upload/photos", files={"resource": ("x", PNG, "image/png")}, auth=upload_auth).status_code == 400
    assert media.post("/upload/photos", data={"filename": "x"}, auth=upload_auth).status_code == 400
    assert _upload(media, "photos", "doc", PDF, "image/png", upload_auth).status_code == 400      # bytes are a PDF
    assert _upload(media, "resume", "pic", PNG, "application/pdf", upload_auth).status_code == 400
    assert _upload(media, "icons", "pic", PDF, "application/pdf", upload_auth).status_code == 400


def test_upload_over_25_mib_413(media: httpx.Client, upload_auth: tuple[str, str]) -> None:
    big = PDF + b"0" * (25 * 1024 * 1024)
    assert _upload(media, "resume", "big", big, "application/pdf", upload_auth).status_code == 413
