"""Groups from a JSON/TOML file, the defaults, and a server running a custom configuration."""

from __future__ import annotations

import json

import httpx
import pytest

from workup.media import MediaConfig, builtin_placeholder, default_groups, load_groups, media_config
from workup.settings import Settings, SettingsError

from .conftest import PASSWORD, USER, jpeg, pdf, png, start_media


BANNERS = '''
[[groups]]
name = "banners"
mime_types = ["image/png", "image/jpeg"]
placeholder = "banner.png"
resize = { width = 100, height = 50, mode = "cover" }
'''
DOCS_GROUP = '''
[[groups]]
name = "docs"
mime_types = ["application/pdf"]
'''


def write_banners(directory, extra=""):
    (directory / "banner.png").write_bytes(png(30, 10))
    (directory / "groups.toml").write_text(BANNERS + extra)


def test_defaults():
    config = media_config("/srv/data", upload_user="u", upload_password="pw-never-printed")
    assert config.storage_dir == "/srv/data/media"
    assert config.max_upload_bytes == 25 * 1024 * 1024
    assert [g.name for g in config.groups] == ["icons", "photos", "resume", "attachments"]
    assert [g.mime_types for g in config.groups] == [["image/png"], ["image/jpeg", "image/png"], ["application/pdf"], ["application/pdf"]]
    assert all(g.placeholder_path().is_file() for g in config.groups)
    assert "pw-never-printed" not in repr(config)


def test_toml_groups(tmp_path):
    write_banners(tmp_path, extra=DOCS_GROUP)
    groups = load_groups(tmp_path / "groups.toml")
    assert [g.name for g in groups] == ["banners", "docs"]
    assert groups[0].placeholder_path() == tmp_path / "banner.png"
    assert groups[0].resize.mode == "cover" and groups[0].resize.width == 100
    assert groups[1].placeholder_path() == builtin_placeholder("application/pdf")


def test_json_groups(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"groups": [{"name": "logos", "mime_types": ["image/png"]}]}))
    assert [g.name for g in load_groups(path)] == ["logos"]


@pytest.mark.parametrize("content,message", [
    ({"groups": []}, "at least one group"),
    ({"groups": [{"name": "Bad Name", "mime_types": ["image/png"]}]}, "group name"),
    ({"groups": [{"name": "../x", "mime_types": ["image/png"]}]}, "group name"),
    ({"groups": [{"name": "a", "mime_types": ["video/mp4"]}]}, "unsupported MIME type"),
    ({"groups": [{"name": "a", "mime_types": []}]}, "mime_types is empty"),
    ({"groups": [{"name": "a", "mime_types": ["image/png"]}, {"name": "a", "mime_types": ["image/png"]}]}, "twice"),
    ({"groups": [{"name": "a", "mime_types": ["image/png"], "placeholder": "nope.png"}]}, "placeholder"),
    ({"groups": [{"name": "a", "mime_types": ["application/pdf"], "resize": {"width": 1, "height": 1}}]}, "image groups"),
    ({"groups": [{"name": "a", "mime_types": ["image/png"], "resize": {"width": 0, "height": 1}}]}, "between 1 and"),
    ({"groups": [{"name": "a", "mime_types": ["image/png"], "colour": "red"}]}, "colour"),
    ({"groups": [{"mime_types": ["image/png"]}]}, "name"),
    ({"nothing": 1}, "nothing"),
])
def test_bad_group_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(content))
    with pytest.raises(SettingsError) as info:
        load_groups(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unreadable_or_unknown_files(tmp_path):
    for path, message in [(tmp_path / "missing.toml", "No such file"), (tmp_path / "g.yaml", ".json or .toml")]:
        if path.suffix == ".yaml":
            path.write_text("groups: []")
        with pytest.raises(SettingsError, match=message):
            load_groups(path)
    bad = tmp_path / "bad.toml"
    bad.write_text("groups = [")
    with pytest.raises(SettingsError, match="bad.toml"):
        load_groups(bad)


def test_credentials_and_limit_are_required():
    for user, password in [(None, "p"), ("u", None), ("", ""), ("a:b", "p")]:
        with pytest.raises(SettingsError):
            media_config("/d", upload_user=user, upload_password=password)
    with pytest.raises(SettingsError):
        media_config("/d", upload_user="u", upload_password="p", max_upload_mb=0)
    with pytest.raises(SettingsError):
        MediaConfig(storage_dir="/d", upload_user="u", upload_password="p", groups=default_groups(), max_upload_bytes=-1)


async def test_custom_groups_served(nursery, tmp_path):
    write_banners(tmp_path)
    config = media_config(tmp_path, upload_user=USER, upload_password=PASSWORD, groups=tmp_path / "groups.toml")
    port = await start_media(nursery, config)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/describe")).json()["groups"] == ["banners"]
        r = await client.get("/static/banners/none.png")
        assert r.content == png(30, 10) and r.headers["x-placeholder"] == "true" and r.headers["content-type"] == "image/png"
        assert (await client.get("/static/icons/x.png")).status_code == 404
        r = await client.post("/upload/banners", auth=(USER, PASSWORD), files={"resource": ("b", png(400, 400))}, data={"filename": "b"})
        assert r.status_code == 201
        from PIL import Image
        with Image.open(tmp_path / "media" / "banners" / "b.png") as im:
            assert im.size == (100, 50)  # cover: cropped to exactly the box
        r = await client.post("/upload/banners", auth=(USER, PASSWORD), files={"resource": ("c", pdf())}, data={"filename": "c"})
        assert r.status_code == 400
        assert (await client.post("/upload/banners", auth=(USER, PASSWORD), files={"resource": ("j", jpeg())},
                                  data={"filename": "j"})).json()["path"] == "/static/banners/j.jpg"


async def test_serve_media_from_settings(nursery, tmp_path):
    from functools import partial

    from workup.media import serve_media

    settings = Settings(data_dir=str(tmp_path), upload_user=USER, upload_password=PASSWORD)
    port = await nursery.start(partial(serve_media, settings, host="127.0.0.1", port=0))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        r = await client.post("/upload/icons", auth=(USER, PASSWORD), files={"resource": ("a", png())}, data={"filename": "a"})
        assert r.status_code == 201
    assert (tmp_path / "media" / "icons" / "a.png").read_bytes() == png()
    with pytest.raises(SettingsError):
        await serve_media(Settings(data_dir=str(tmp_path)), port=0)
