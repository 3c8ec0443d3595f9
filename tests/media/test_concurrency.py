"""Readers racing an upload of the same name see a whole old file or a whole new one, never a mix."""

from __future__ import annotations

import trio

from workup.media import builtin_placeholder

from .conftest import pdf

URL = "/static/attachments/race.pdf"


async def test_concurrent_upload_and_download_never_yield_a_partial_file(media):
    versions = [pdf(bytes([48 + i]) * size) for i, size in enumerate([300_000, 700_000, 120_000])]
    placeholder = builtin_placeholder("application/pdf").read_bytes()
    whole = {placeholder, *versions}
    seen: list[bytes] = []
    uploads_done = trio.Event()

    async def uploader() -> None:
        for i in range(12):
            r = await media.upload("attachments", versions[i % 3], "race")
            assert r.status_code == 201, r.text
            await trio.sleep(0)
        uploads_done.set()

    async def reader() -> None:
        while not uploads_done.is_set():
            r = await media.client.get(URL)
            assert r.status_code == 200
            assert r.content in whole, f"partial or mixed body of {len(r.content)} bytes"
            assert int(r.headers["content-length"]) == len(r.content)
            assert (r.headers.get("x-placeholder") == "true") == (r.content == placeholder)
            seen.append(r.content)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(uploader)
            for _ in range(3):
                nursery.start_soon(reader)
    assert len(set(seen)) >= 2, "the readers never overlapped an upload"
    # and nothing is left half-written
    assert sorted(p.name for p in media.group_dir("attachments").iterdir()) == ["race.pdf"]


async def test_a_download_in_progress_keeps_the_version_it_started_with(media):
    old, new = pdf(b"o" * 900_000), pdf(b"n" * 50_000)
    assert (await media.upload("attachments", old, "race")).status_code == 201
    async with media.client.stream("GET", URL) as r:
        chunks = r.aiter_raw(4096)
        first = await chunks.__anext__()
        # replace the file while the response is still being read
        assert (await media.upload("attachments", new, "race")).status_code == 201
        body = first + b"".join([c async for c in chunks])
    assert body == old
    assert (await media.client.get(URL)).content == new
