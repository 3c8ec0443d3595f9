"""POST /upload: authentication, multipart fields, type sniffing, name sanitising, limits, resizing."""

from __future__ import annotations

import io

import httpx
from PIL import Image

from .conftest import LIMIT_MB, PASSWORD, USER, basic, jpeg, pdf, png, raw_request, tree

LIMIT = LIMIT_MB * 1024 * 1024


def temporaries(media) -> list[str]:
    return [p.name for p in media.storage.rglob(".*")]


async def test_upload_stores_the_file_and_returns_its_path(media):
    content = pdf(b"my cv" * 1000)
    r = await media.upload("resume", content, "My CV 2024.PDF")
    assert r.status_code == 201, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"success": True, "path": "/static/resume/my_cv_2024.pdf"}
    assert (media.group_dir("resume") / "my_cv_2024.pdf").read_bytes() == content
    got = await media.client.get(r.json()["path"])
    assert got.status_code == 200 and got.content == content and "x-placeholder" not in got.headers
    assert temporaries(media) == []


async def test_field_order_does_not_matter(media):
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"filename\"\r\n\r\nfirst\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"resource\"; filename=\"x\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + pdf() + f"\r\n--{boundary}--\r\n".encode()
    r = await media.client.post("/upload/attachments", content=body, auth=(USER, PASSWORD),
                                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 201, r.text
    assert r.json()["path"] == "/static/attachments/first.pdf"


async def test_same_name_replaces_the_file(media):
    first = await media.upload("attachments", pdf(b"one"), "same")
    etag1 = (await media.client.get("/static/attachments/same.pdf")).headers["etag"]
    second = await media.upload("attachments", pdf(b"two, longer"), "same")
    assert first.json() == second.json()
    r = await media.client.get("/static/attachments/same.pdf")
    assert r.content == pdf(b"two, longer") and r.headers["etag"] != etag1


async def test_missing_or_wrong_credentials_are_401(media):
    cases = [
        None,
        (USER, "wrong"),
        ("someone", PASSWORD),
        (USER, PASSWORD + "x"),
        (USER, PASSWORD[:-1]),
    ]
    for auth in cases:
        r = await media.upload("icons", png(), "a", auth=auth)
        assert r.status_code == 401, auth
        assert r.headers["www-authenticate"].startswith("Basic realm=")
        assert r.headers["content-type"] == "application/problem+json" and r.json()["status"] == 401
    for header in ["Bearer abc", "Basic !!!notbase64", "Basic " + "dXNlcg==", basic(USER, "nope")]:
        r = await media.client.post("/upload/icons", headers={"Authorization": header},
                                    files={"resource": ("a", png())}, data={"filename": "a"})
        assert r.status_code == 401, header
    assert media.group_dir("icons").exists() and list(media.group_dir("icons").iterdir()) == []


async def test_unknown_group_is_404(media):
    r = await media.upload("videos", png(), "a")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert not (media.storage / "videos").exists()


async def test_png_renamed_pdf_is_refused_for_resume(media):
    r = await media.client.post("/upload/resume", auth=(USER, PASSWORD),
                                files={"resource": ("cv.pdf", png(), "application/pdf")}, data={"filename": "cv.pdf"})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    assert "image/png" in r.json()["detail"] and "application/pdf" in r.json()["detail"]
    assert list(media.group_dir("resume").iterdir()) == []


async def test_type_is_checked_against_the_group(media):
    for group, content in [("icons", pdf()), ("icons", jpeg()), ("photos", pdf()),
                           ("attachments", b"just some text, no magic"), ("resume", b"GIF89a......")]:
        r = await media.upload(group, content, "x")
        assert r.status_code == 400, (group, r.text)
    assert temporaries(media) == [] and all(not any(d.iterdir()) for d in media.storage.iterdir())


async def test_missing_fields_and_bad_bodies_are_400(media):
    auth = (USER, PASSWORD)
    cases = [
        dict(files={"resource": ("a", png())}),                       # no filename
        dict(data={"filename": "a"}, files={"other": ("a", png())}),  # no resource
        dict(files={"resource": ("a", b"")}, data={"filename": "a"}),  # empty resource
        dict(json={"resource": "x", "filename": "a"}),                  # not multipart
        dict(content=b"resource=x&filename=a", headers={"Content-Type": "application/x-www-form-urlencoded"}),
        dict(content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}),  # no boundary
        dict(content=b"garbage without any boundary", headers={"Content-Type": "multipart/form-data; boundary=zz"}),
        dict(files={"resource": ("a", png())}, data={"filename": "   "}),
    ]
    for kw in cases:
        r = await media.client.post("/upload/icons", auth=auth, **kw)
        assert r.status_code == 400, (kw, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"]
    assert temporaries(media) == [] and list(media.group_dir("icons").iterdir()) == []


async def test_two_resources_are_refused(media):
    r = await media.client.post("/upload/attachments", auth=(USER, PASSWORD), data={"filename": "a"},
                                files=[("resource", ("a", pdf())), ("resource", ("b", pdf()))])
    assert r.status_code == 400 and "more than one" in r.json()["detail"]
    assert temporaries(media) == [] and list(media.group_dir("attachments").iterdir()) == []


async def test_names_are_sanitised(media):
    cases = {
        "Résumé Final": "resume_final.pdf",
        "UPPER.PDF": "upper.pdf",
        "  spaced out  ": "spaced_out.pdf",
        ".hidden": "hidden.pdf",
        "-dash": "dash.pdf",
        "semi;colon&amp=1": "semi_colon_amp_1.pdf",
        "v1.2-final": "v1.2-final.pdf",
        "x" * 300: "x" * 100 + ".pdf",
    }
    for given, stored in cases.items():
        r = await media.upload("attachments", pdf(), given)
        assert r.status_code == 201, (given, r.text)
        assert r.json()["path"] == f"/static/attachments/{stored}", given
        assert (media.group_dir("attachments") / stored).read_bytes() == pdf()


async def test_traversal_in_filename_is_neutralised_and_nothing_written_outside(media, tmp_path):
    (tmp_path / "victim.pdf").write_bytes(b"ORIGINAL")
    before = tree(tmp_path)
    attempts = [
        "../victim", "../../victim", "../../../../tmp/evil", "..", "...", "a/../b", "sub/name",
        "/etc/passwd", "/tmp/evil", str(tmp_path / "victim"),
        "..\\victim", "C:\\evil", "\\\\server\\share",
        "%2e%2e%2fvictim", "%2E%2E%2Fvictim", "..%2fvictim", "%2e%2e%5cvictim",
        "%252e%252e%252fvictim", "%25252e%25252e%25252fvictim",
        "evil\x00.pdf", "evil%00.pdf", "line\nbreak",
        "\uff0e\uff0e\uff0fvictim",  # fullwidth ../
        "\u2024\u2024/victim",
    ]
    stored = set()
    for name in attempts:
        r = await media.upload("resume", pdf(b"EVIL"), name)
        if r.status_code == 400:  # nothing usable left in the name ("..", "...")
            assert r.headers["content-type"] == "application/problem+json"
            continue
        assert r.status_code == 201, (name, r.status_code, r.text)
        path = r.json()["path"]
        file = path.removeprefix("/static/resume/")
        assert path.startswith("/static/resume/") and "/" not in file and "\\" not in file and ".." not in file
        assert (media.group_dir("resume") / file).read_bytes() == pdf(b"EVIL")
        stored.add(file)
    assert stored and len(stored) >= len(attempts) // 3
    group = str(media.group_dir("resume").relative_to(tmp_path)) + "/"
    after = {k: v for k, v in tree(tmp_path).items() if not k.startswith(group)}
    assert after == before  # nothing outside the group directory was created or changed
    assert {p.name for p in media.group_dir("resume").iterdir()} == stored
    for group in ("icons", "photos", "attachments"):
        assert list(media.group_dir(group).iterdir()) == []


async def test_upload_over_the_limit_is_413_and_leaves_nothing(media):
    # streamed without a Content-Length: the server counts while it writes, then drops the file
    async def body():
        boundary = b"lim1t"
        yield b"--lim1t\r\nContent-Disposition: form-data; name=\"filename\"\r\n\r\nbig\r\n"
        yield b"--lim1t\r\nContent-Disposition: form-data; name=\"resource\"; filename=\"b\"\r\n\r\n%PDF-1.4\n"
        for _ in range(LIMIT // 65536 + 4):
            yield b"z" * 65536
        yield b"\r\n--" + boundary + b"--\r\n"

    r = await media.client.post("/upload/attachments", auth=(USER, PASSWORD), content=body(),
                                headers={"Content-Type": "multipart/form-data; boundary=lim1t"})
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert list(media.group_dir("attachments").iterdir()) == []
    # the server stays healthy afterwards
    assert (await media.upload("attachments", pdf(), "small")).status_code == 201


async def test_just_under_the_limit_is_accepted(media):
    content = pdf(b"y" * (LIMIT - 100))
    assert len(content) <= LIMIT
    r = await media.upload("attachments", content, "edge")
    assert r.status_code == 201, r.text
    assert (media.group_dir("attachments") / "edge.pdf").stat().st_size == len(content)
    r = await media.upload("attachments", pdf(b"y" * LIMIT), "over")
    assert r.status_code == 413


async def test_declared_length_over_the_limit_is_413_before_the_body(media):
    head = (f"POST /upload/attachments HTTP/1.1\r\nHost: t\r\nAuthorization: {basic(USER, PASSWORD)}\r\n"
            f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {10 * LIMIT}\r\n\r\n").encode()
    status, headers, body = await raw_request(media.port, head)  # the body is never sent
    assert status == 413 and headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert temporaries(media) == []


async def test_icons_and_photos_are_downscaled(media):
    r = await media.upload("icons", png(600, 300), "wide")
    assert r.status_code == 201
    with Image.open(media.group_dir("icons") / "wide.png") as im:
        assert im.format == "PNG" and im.size == (256, 128)
    buf = io.BytesIO()
    Image.new("RGB", (3000, 1500), (1, 2, 3)).save(buf, format="JPEG")
    r = await media.upload("photos", buf.getvalue(), "big")
    assert r.json()["path"] == "/static/photos/big.jpg"
    with Image.open(media.group_dir("photos") / "big.jpg") as im:
        assert im.format == "JPEG" and im.size == (1024, 512)
    # small images are kept byte for byte
    small = png(40, 40)
    await media.upload("icons", small, "small")
    assert (media.group_dir("icons") / "small.png").read_bytes() == small


async def test_undecodable_image_is_refused_where_resizing(media):
    r = await media.upload("icons", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "fake")
    assert r.status_code == 400 and "image" in r.json()["detail"]
    assert list(media.group_dir("icons").iterdir()) == []


async def test_keep_alive_connection_survives_errors(media):
    # one client connection: a refused upload must not break the next request on it
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(base_url=str(media.client.base_url), limits=limits) as client:
        assert (await client.post("/upload/icons", files={"resource": ("a", png())}, data={"filename": "a"})).status_code == 401
        r = await client.post("/upload/icons", auth=(USER, PASSWORD), files={"resource": ("a", png())}, data={"filename": "a"})
        assert r.status_code == 201
        assert (await client.get("/describe/icons")).json()["files"] == ["a.png"]


async def test_a_client_that_stops_sending_gets_408_and_nothing_is_kept(media, monkeypatch):
    import workup.media._upload as upload_module

    monkeypatch.setattr(upload_module, "IDLE_TIMEOUT", 0.5)
    start = (b"--q\r\nContent-Disposition: form-data; name=\"resource\"; filename=\"x\"\r\n\r\n%PDF-1.4\n" + b"a" * 1000)
    head = (f"POST /upload/attachments HTTP/1.1\r\nHost: t\r\nAuthorization: {basic(USER, PASSWORD)}\r\n"
            f"Content-Type: multipart/form-data; boundary=q\r\nContent-Length: {len(start) + 5000}\r\n\r\n").encode()
    status, headers, body = await raw_request(media.port, head + start)  # then silence
    assert status == 408 and headers["content-type"] == "application/problem+json"
    assert list(media.group_dir("attachments").iterdir()) == []


async def test_traversal_in_the_upload_url_is_refused(media, tmp_path):
    before = tree(tmp_path)
    multipart = (b"--t\r\nContent-Disposition: form-data; name=\"filename\"\r\n\r\nevil\r\n"
                 b"--t\r\nContent-Disposition: form-data; name=\"resource\"; filename=\"e\"\r\n\r\n%PDF-1.4\nEVIL\r\n--t--\r\n")
    for target in ["/upload/..", "/upload/%2e%2e", "/upload/..%2fmedia", "/upload/resume%2f..%2f..",
                   "/upload/resume/../../x", "/upload/%2fetc", "/upload/resume%00"]:
        request = (f"POST {target} HTTP/1.1\r\nHost: t\r\nAuthorization: {basic(USER, PASSWORD)}\r\nConnection: close\r\n"
                   f"Content-Type: multipart/form-data; boundary=t\r\nContent-Length: {len(multipart)}\r\n\r\n").encode() + multipart
        status, headers, _ = await raw_request(media.port, request)
        assert status in (400, 404), (target, status)
        assert headers["content-type"] == "application/problem+json"
    assert tree(tmp_path) == before
