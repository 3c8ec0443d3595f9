"""GET /static: stored files, placeholders, validators, conditional GET and byte ranges."""

from __future__ import annotations

import os

from workup.media import builtin_placeholder

from .conftest import get, jpeg, pdf, png


async def test_missing_file_gives_the_group_placeholder(media):
    for group, mime, placeholder in [
        ("icons", "image/png", "icon.png"),
        ("photos", "image/jpeg", "photo.jpg"),
        ("resume", "application/pdf", "document.pdf"),
        ("attachments", "application/pdf", "document.pdf"),
    ]:
        r = await media.client.get(f"/static/{group}/nobody-uploaded-this.{placeholder.rsplit('.')[1]}")
        assert r.status_code == 200, (group, r.text)
        assert r.headers["x-placeholder"] == "true"
        assert r.headers["content-type"] == mime
        assert r.content == builtin_placeholder(mime).read_bytes()
        assert builtin_placeholder(mime).name == placeholder
        assert r.headers["content-length"] == str(len(r.content))
        assert r.headers["etag"] and r.headers["last-modified"]


async def test_placeholders_are_valid_files():
    from PIL import Image

    with Image.open(builtin_placeholder("image/png")) as im:
        assert im.format == "PNG"
    with Image.open(builtin_placeholder("image/jpeg")) as im:
        assert im.format == "JPEG"
    doc = builtin_placeholder("application/pdf").read_bytes()
    assert doc.startswith(b"%PDF-1.") and doc.rstrip().endswith(b"%%EOF") and b"/Type /Page" in doc


async def test_unknown_group_is_404_problem(media):
    r = await media.client.get("/static/videos/a.mp4")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == 404 and body["title"] == "Not Found" and "videos" in body["detail"] and body["type"]


async def test_stored_file_is_served_with_validators(media):
    content = png(20, 10)
    r = await media.upload("icons", content, "Logo")
    assert r.status_code == 201, r.text
    r = await media.client.get("/static/icons/logo.png")
    assert r.status_code == 200
    assert r.content == content
    assert r.headers["content-type"] == "image/png"
    assert "x-placeholder" not in r.headers
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["x-content-type-options"] == "nosniff"
    st = os.stat(media.group_dir("icons") / "logo.png")
    assert r.headers["etag"].startswith('"') and r.headers["etag"].endswith('"')
    from email.utils import parsedate_to_datetime
    assert int(parsedate_to_datetime(r.headers["last-modified"]).timestamp()) == int(st.st_mtime)
    # names are stored in lower case; a request in another case finds the same file
    r2 = await media.client.get("/static/icons/LOGO.PNG")
    assert r2.status_code == 200 and r2.content == content and r2.headers["etag"] == r.headers["etag"]


async def test_head_gives_headers_without_body(media):
    await media.upload("resume", pdf(b"x" * 100), "cv")
    r = await media.client.head("/static/resume/cv.pdf")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == str(len(pdf(b"x" * 100)))
    assert r.headers["content-type"] == "application/pdf"


async def _stored(media, content=None):
    content = content or pdf(bytes(range(256)) * 4)
    assert (await media.upload("attachments", content, "doc")).status_code == 201
    r = await media.client.get("/static/attachments/doc.pdf")
    return content, r.headers["etag"], r.headers["last-modified"]


async def test_if_none_match_gives_304(media):
    content, etag, last_modified = await _stored(media)
    for header in [etag, f'"nope", {etag}', f"W/{etag}", "*"]:
        r = await media.client.get("/static/attachments/doc.pdf", headers={"If-None-Match": header})
        assert r.status_code == 304, header
        assert r.content == b"" and r.headers["etag"] == etag
    r = await media.client.get("/static/attachments/doc.pdf", headers={"If-None-Match": '"other"'})
    assert r.status_code == 200 and r.content == content
    # If-None-Match wins over If-Modified-Since
    r = await media.client.get("/static/attachments/doc.pdf",
                               headers={"If-None-Match": '"other"', "If-Modified-Since": last_modified})
    assert r.status_code == 200


async def test_if_modified_since_gives_304(media):
    content, etag, last_modified = await _stored(media)
    r = await media.client.get("/static/attachments/doc.pdf", headers={"If-Modified-Since": last_modified})
    assert r.status_code == 304 and r.headers["etag"] == etag
    r = await media.client.get("/static/attachments/doc.pdf", headers={"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})
    assert r.status_code == 200 and r.content == content
    r = await media.client.get("/static/attachments/doc.pdf", headers={"If-Modified-Since": "not a date"})
    assert r.status_code == 200


async def test_placeholder_revalidates_too(media):
    r = await media.client.get("/static/icons/none.png")
    r2 = await media.client.get("/static/icons/none.png", headers={"If-None-Match": r.headers["etag"]})
    assert r2.status_code == 304 and r2.headers["x-placeholder"] == "true"
    assert r.headers["cache-control"] == "no-cache"


async def test_byte_ranges(media):
    content, etag, _ = await _stored(media)
    n = len(content)
    cases = {
        "bytes=0-9": (0, 10),
        "bytes=5-": (5, n),
        "bytes=-4": (n - 4, n),
        f"bytes=10-{n + 100}": (10, n),
        "bytes=-99999": (0, n),
    }
    for header, (start, end) in cases.items():
        r = await media.client.get("/static/attachments/doc.pdf", headers={"Range": header})
        assert r.status_code == 206, header
        assert r.content == content[start:end], header
        assert r.headers["content-range"] == f"bytes {start}-{end - 1}/{n}"
        assert r.headers["content-length"] == str(end - start)
        assert r.headers["etag"] == etag


async def test_unsatisfiable_range_is_416(media):
    content, _, _ = await _stored(media)
    for header in [f"bytes={len(content)}-", "bytes=-0"]:
        r = await media.client.get("/static/attachments/doc.pdf", headers={"Range": header})
        assert r.status_code == 416, header
        assert r.headers["content-range"] == f"bytes */{len(content)}"
        assert r.headers["content-type"] == "application/problem+json" and r.json()["status"] == 416


async def test_ranges_ignored_when_malformed_multiple_or_stale(media):
    content, etag, _ = await _stored(media)
    for headers in [{"Range": "bytes=0-1,5-6"}, {"Range": "bytes=9-3"}, {"Range": "items=0-1"},
                    {"Range": "bytes=0-1", "If-Range": '"stale"'},
                    {"Range": "bytes=0-1", "If-Range": "Sat, 01 Jan 2000 00:00:00 GMT"}]:
        r = await media.client.get("/static/attachments/doc.pdf", headers=headers)
        assert r.status_code == 200 and r.content == content, headers
    r = await media.client.get("/static/attachments/doc.pdf", headers={"Range": "bytes=0-1", "If-Range": etag})
    assert r.status_code == 206 and r.content == content[:2]


async def test_range_on_placeholder(media):
    whole = builtin_placeholder("image/jpeg").read_bytes()
    r = await media.client.get("/static/photos/missing.jpg", headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == whole[-10:] and r.headers["x-placeholder"] == "true"


async def test_hidden_symlinked_and_directory_entries_are_not_served(media, tmp_path):
    secret = tmp_path / "secret.pdf"
    secret.write_bytes(pdf(b"TOP SECRET"))
    group = media.group_dir("resume")
    (group / "link.pdf").symlink_to(secret)
    (group / "sub.pdf").mkdir()
    (group / ".upload-0000.part").write_bytes(pdf(b"HALF"))
    placeholder = builtin_placeholder("application/pdf").read_bytes()
    for name in ["link.pdf", "sub.pdf"]:
        r = await media.client.get(f"/static/resume/{name}")
        assert r.status_code == 200 and r.headers["x-placeholder"] == "true" and r.content == placeholder
    r = await media.client.get("/static/resume/.upload-0000.part")
    assert r.status_code == 400 and b"HALF" not in r.content
    r = await media.client.get("/describe/resume")
    assert r.json()["files"] == []


async def test_unknown_route_and_method_are_problems(media):
    r = await media.client.get("/nothing/here")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = await media.client.put("/describe")
    assert r.status_code == 405 and r.headers["content-type"] == "application/problem+json"
    r = await media.client.get("/upload/icons")
    assert r.status_code == 405


async def test_url_traversal_is_refused(media, tmp_path):
    (media.storage / "secret.pdf").write_bytes(pdf(b"STORAGE SECRET"))
    (tmp_path / "secret.pdf").write_bytes(pdf(b"OUTSIDE SECRET"))
    (media.group_dir("icons") / "ok.png").write_bytes(png())
    attempts = [
        "/static/icons/../secret.pdf",
        "/static/icons/../../secret.pdf",
        "/static/icons/..%2fsecret.pdf",
        "/static/icons/%2e%2e%2fsecret.pdf",
        "/static/icons/%2E%2E%2F%2E%2E%2Fsecret.pdf",
        "/static/icons/%252e%252e%252fsecret.pdf",
        "/static/icons/%25252e%25252e%25252fsecret.pdf",
        "/static/icons/..%5csecret.pdf",
        "/static/icons/%5c..%5csecret.pdf",
        "/static/icons//etc/passwd",
        "/static/icons/%2fetc%2fpasswd",
        f"/static/icons/{tmp_path}/secret.pdf",
        "/static/icons/ok.png%00.pdf",
        "/static/icons/..",
        "/static/icons/%2e%2e",
        "/static/..%2fsecret.pdf/x",
        "/static/%2e%2e/secret.pdf",
        "/describe/..",
        "/describe/%2e%2e",
    ]
    for path in attempts:
        status, headers, body = await media.raw(get(path))
        assert status in (400, 404), (path, status)
        assert b"SECRET" not in body and b"root:" not in body, path
        assert headers.get("content-type") == "application/problem+json", path


async def test_type_comes_from_extension_of_stored_name(media):
    assert (await media.upload("photos", jpeg(), "me")).json()["path"] == "/static/photos/me.jpg"
    assert (await media.upload("photos", png(), "me")).json()["path"] == "/static/photos/me.png"
    r = await media.client.get("/static/photos/me.jpg")
    assert r.headers["content-type"] == "image/jpeg" and r.content == jpeg()
    r = await media.client.get("/static/photos/me.png")
    assert r.headers["content-type"] == "image/png" and r.content == png()
