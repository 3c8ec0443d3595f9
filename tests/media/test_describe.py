"""GET /describe and /describe/{group}, exactly as the REST contract says."""

from __future__ import annotations

from .conftest import jpeg, pdf, png


async def test_describe_lists_the_groups(media):
    r = await media.client.get("/describe")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"success": True, "path": "/static/", "groups": ["icons", "photos", "resume", "attachments"]}


async def test_describe_group(media):
    expected = {
        "icons": ("image/png", ["image/png"]),
        "photos": ("image/jpeg", ["image/jpeg", "image/png"]),
        "resume": ("application/pdf", ["application/pdf"]),
        "attachments": ("application/pdf", ["application/pdf"]),
    }
    for group, (main, all_types) in expected.items():
        r = await media.client.get(f"/describe/{group}")
        assert r.status_code == 200
        assert r.json() == {"success": True, "path": f"/static/{group}/", "mimeType": main,
                            "mimeTypes": all_types, "files": []}


async def test_describe_group_lists_uploaded_files_only(media):
    await media.upload("photos", jpeg(), "b")
    await media.upload("photos", png(), "a")
    (media.group_dir("photos") / ".upload-dead.part").write_bytes(b"temp")
    (media.group_dir("photos") / "adir").mkdir()
    (media.group_dir("photos") / "link.jpg").symlink_to(media.group_dir("photos") / "a.png")
    await media.upload("resume", pdf(), "cv")
    r = await media.client.get("/describe/photos")
    assert r.json()["files"] == ["a.png", "b.jpg"]
    assert (await media.client.get("/describe/resume")).json()["files"] == ["cv.pdf"]


async def test_describe_unknown_group_is_404(media):
    r = await media.client.get("/describe/videos")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 404 and "videos" in r.json()["detail"]
