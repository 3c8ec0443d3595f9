"""``/docs`` in a real headless Chromium (Debian's ``chromium``, which ``./scripts/test`` installs
through ``scripts/_browser.sh``), driven over the Chrome DevTools protocol, against the real gateway
of each mode (``workup up`` as a process; the distributed gateway on RabbitMQ and Redis): the page
loads with no failed or blocked request and nothing from another origin, lists every operation of
``/openapi.json``, and a screenshot of it is not blank. Without Chromium these tests fail; they
never skip.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest
import trio
from PIL import Image
from trio_websocket import WebSocketConnection, open_websocket_url

from workup.gateway.routes._docs import ASSETS
from workup.testing import running_system

from ._serve import make_app, served

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-proxy-server", "--hide-scrollbars", "--window-size=1280,2000", "--remote-debugging-port=0"]

# what the rendered page lists, one row per operation block: method, path, operation id
_OPERATIONS = """JSON.stringify([...document.querySelectorAll('.opblock')].map(b => [
  b.querySelector('.opblock-summary-method').textContent,
  b.querySelector('.opblock-summary-path').getAttribute('data-path'),
  (b.querySelector('.opblock-summary-operation-id') || {textContent: ''}).textContent]))"""


class Cdp:
    """The DevTools protocol over one WebSocket: one command at a time; events that arrive
    meanwhile are kept in ``events``."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws, self.last, self.events = ws, 0, []

    async def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.last += 1
        message: dict[str, Any] = {"id": self.last, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self.ws.send_message(json.dumps(message))
        while True:
            data = json.loads(await self.ws.get_message())
            if data.get("id") == self.last:
                if "error" in data:
                    raise AssertionError(f"{method}: {data['error']}")
                return data["result"]
            self.events.append(data)

    def of(self, method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in self.events if e.get("method") == method]


@asynccontextmanager
async def _chromium(profile: Path) -> AsyncIterator[Cdp]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("Debian's chromium is not installed (./scripts/test installs it: scripts/_browser.sh)")
    profile.mkdir()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(
            trio.run_process, [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"], check=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        port_file = profile / "DevToolsActivePort"   # written once the DevTools server listens
        with trio.fail_after(30):
            while not port_file.exists() or len(port_file.read_text().split()) < 2:
                await trio.sleep(0.05)
        port, path = port_file.read_text().split()[:2]
        async with open_websocket_url(f"ws://127.0.0.1:{port}{path}", max_message_size=64 * 2**20) as ws:
            yield Cdp(ws)
        nursery.cancel_scope.cancel()   # trio.run_process stops the browser: SIGTERM, SIGKILL 5 s later


async def _open_docs(cdp: Cdp, base_url: str, expected: int) -> tuple[str, list[list[str]]]:
    """Open ``/docs`` in a new tab; wait until it lists ``expected`` operations and the network is
    quiet. The tab's session id and the rendered rows."""
    target = (await cdp.send("Target.createTarget", url="about:blank"))["targetId"]
    session = (await cdp.send("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
    for domain in ("Network", "Page", "Runtime", "Log"):
        await cdp.send(f"{domain}.enable", session)
    await cdp.send("Page.navigate", session, url=base_url + "/docs")
    rows: list[list[str]] = []
    with trio.move_on_after(90):   # a loaded box: 20 s seen with 8 test runs on 2 cores
        while True:
            done = {e["requestId"] for m in ("Network.loadingFinished", "Network.loadingFailed") for e in cdp.of(m)}
            pending = {e["requestId"] for e in cdp.of("Network.requestWillBeSent")} - done
            value = (await cdp.send("Runtime.evaluate", session, expression=_OPERATIONS,
                                    returnByValue=True))["result"].get("value")
            rows = json.loads(value) if value else []
            if len(rows) >= expected and not pending and cdp.of("Page.loadEventFired"):
                break
            await trio.sleep(0.2)
    return session, rows


def _failures(cdp: Cdp, base_url: str) -> list[str]:
    """Every request that failed, was blocked, answered 4xx/5xx or left the origin, and every
    console error or uncaught exception."""
    bad = [f"{e['response']['status']} {e['response']['url']}" for e in cdp.of("Network.responseReceived")
           if e["response"]["status"] >= 400]
    url = {e["requestId"]: e["request"]["url"] for e in cdp.of("Network.requestWillBeSent")}
    bad += [f"failed ({e.get('blockedReason') or e['errorText']}): {url.get(e['requestId'])}"
            for e in cdp.of("Network.loadingFailed")]
    bad += [f"left the origin: {e['request']['url']}" for e in cdp.of("Network.requestWillBeSent")
            if not e["request"]["url"].startswith((base_url + "/", "data:"))]
    bad += [f"console {e['entry']['level']}: {e['entry']['text']}" for e in cdp.of("Log.entryAdded")
            if e["entry"]["level"] == "error"]
    bad += [f"exception: {e['exceptionDetails']}" for e in cdp.of("Runtime.exceptionThrown")]
    return bad


def _expected(doc: dict[str, Any]) -> list[list[str]]:
    return sorted([method.upper(), path, op["operationId"]]
                  for path, item in doc["paths"].items() for method, op in item.items() if method != "parameters")


@asynccontextmanager
async def _workup_up(data_dir: Path) -> AsyncIterator[str]:
    """``workup up``, the embedded system, as a user starts it: its API's base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKUP_", "UPLOAD_"))}
    output = data_dir.parent / "workup-up.out"
    argv = [str(Path(sys.executable).with_name("workup")), "up", "--port", "0", "--media-port", "0",
            "--data-dir", str(data_dir), "--log-level", "WARNING"]
    with output.open("wb") as out:
        async with trio.open_nursery() as nursery:
            process = await nursery.start(partial(trio.run_process, argv, check=False, stdout=out,
                                                  stderr=subprocess.STDOUT, env=env))
            with trio.fail_after(90):
                while b"Press Ctrl-C" not in output.read_bytes():
                    if process.returncode is not None:
                        pytest.fail(f"workup up exited with {process.returncode}: {output.read_text()}")
                    await trio.sleep(0.1)
            found = re.search(r"API\s+(http://\S+)/api/v1", output.read_text())
            assert found is not None, output.read_text()
            yield found.group(1)
            nursery.cancel_scope.cancel()   # trio.run_process stops it: SIGTERM, SIGKILL 5 s later


@asynccontextmanager
async def _gateway(mode: str, tmp_path: Path) -> AsyncIterator[str]:
    """The base URL of a gateway: ``workup up`` as a process (embedded), or the real gateway on the
    real RabbitMQ and Redis (distributed)."""
    if mode == "embedded":
        async with _workup_up(tmp_path / "data") as url:
            yield url
    else:
        async with running_system(mode, services=()) as system:
            assert system.base_url is not None
            yield system.base_url


@pytest.mark.parametrize("mode", ["embedded", "distributed"])
async def test_docs_page_lists_every_operation_with_no_failed_request(mode: str, tmp_path: Path) -> None:
    async with _gateway(mode, tmp_path) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as http:
            doc = (await http.get("/openapi.json")).json()
        expected = _expected(doc)
        assert len(expected) > 50   # every route of every service, not a stub
        async with _chromium(tmp_path / "profile") as cdp:
            session, rows = await _open_docs(cdp, base_url, len(expected))
            assert not _failures(cdp, base_url), "\n".join(_failures(cdp, base_url))
            assert sorted(rows) == expected
            title = await cdp.send("Runtime.evaluate", session, returnByValue=True,
                                   expression="document.querySelector('.info .title').textContent")
            assert title["result"]["value"].startswith("WorkUp API")
            # every asset came from this gateway: the page, its two assets, the script, the document
            urls = {e["request"]["url"].removeprefix(base_url) for e in cdp.of("Network.requestWillBeSent")}
            assert {"/docs", f"{ASSETS}/swagger-ui.css", f"{ASSETS}/swagger-ui-bundle.js", "/docs/init.js",
                    "/openapi.json"} <= urls
            # a later visit takes the versioned assets from the browser's cache, not the gateway
            await cdp.send("Page.navigate", session, url="about:blank")
            cdp.events.clear()
            await cdp.send("Page.navigate", session, url=base_url + "/docs")
            assets = {f"{ASSETS}/swagger-ui.css", f"{ASSETS}/swagger-ui-bundle.js"}
            answered: dict[str, dict[str, Any]] = {}
            with trio.fail_after(30):
                while not assets <= set(answered):
                    await trio.sleep(0.1)
                    await cdp.send("Runtime.evaluate", session, expression="0")   # takes in the events
                    answered = {e["response"]["url"].removeprefix(base_url): e["response"]
                                for e in cdp.of("Network.responseReceived")}
            assert all(answered[a].get("fromDiskCache") or answered[a].get("fromMemoryCache") for a in assets), {
                a: answered[a]["status"] for a in assets}


async def test_screenshot_of_the_docs_page_is_not_blank(tmp_path: Path) -> None:
    async with served(make_app()) as (client, base_url):
        expected = len(_expected((await client.get("/openapi.json")).json()))
        async with _chromium(tmp_path / "profile") as cdp:
            session, rows = await _open_docs(cdp, base_url, expected)
            assert len(rows) == expected
            shot = await cdp.send("Page.captureScreenshot", session, format="png")
    png = tmp_path / "docs.png"
    png.write_bytes(base64.b64decode(shot["data"]))
    image = Image.open(io.BytesIO(png.read_bytes())).convert("RGB")
    assert image.size[0] >= 800 and image.size[1] >= 600
    colors = image.getcolors(maxcolors=1 << 16)
    # a blank or error page has a handful of colours; Swagger UI's method badges and text many
    assert colors is None or len(colors) > 50, f"{png}: only {len(colors)} colours"
    dominant = max(colors)[0] if colors else 0
    assert dominant < 0.95 * image.size[0] * image.size[1], f"{png} is nearly one colour"


_PAY = "/api/v1/payments/requests/{id}/pay"
_OPEN_PAY = f"""(() => {{
  const block = [...document.querySelectorAll('.opblock')].find(
    b => b.querySelector('.opblock-summary-path').getAttribute('data-path') === '{_PAY}'
      && b.querySelector('.opblock-summary-method').textContent === 'POST');
  if (!block.classList.contains('is-open')) block.querySelector('.opblock-summary-control').click();
  const text = (block.querySelector('.opblock-body') || {{innerText: ''}}).innerText;
  const params = [...block.querySelectorAll('.parameters .parameter__name')].map(e => e.innerText.split(/\\s/)[0]);
  return JSON.stringify([block.querySelector('.opblock-summary-description').innerText, text, params]);
}})()"""


async def test_an_opened_operation_shows_its_description_and_headers(tmp_path: Path) -> None:
    async with served(make_app()) as (client, base_url):
        doc = (await client.get("/openapi.json")).json()
        op = doc["paths"][_PAY]["post"]
        async with _chromium(tmp_path / "profile") as cdp:
            session, rows = await _open_docs(cdp, base_url, len(_expected(doc)))
            summary, body, params = "", "", []
            with trio.fail_after(30):
                while "Idempotency-Key" not in params:
                    value = (await cdp.send("Runtime.evaluate", session, expression=_OPEN_PAY,
                                            returnByValue=True))["result"]["value"]
                    summary, body, params = json.loads(value)
                    await trio.sleep(0.2)
            assert not _failures(cdp, base_url), "\n".join(_failures(cdp, base_url))
    assert summary == op["summary"] == "Pay a payment request"
    assert "In one database transaction the client is debited" in body and "Roles: CLIENT." in body
    assert {"id", "Idempotency-Key", "X-Request-Id"} <= set(params)


async def test_assets_are_cached_immutable_and_nosniff() -> None:
    async with served(make_app()) as (client, _):
        page = await client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "script-src 'self'" in page.headers["content-security-policy"]
        for name, ctype in (("swagger-ui-bundle.js", "text/javascript"), ("swagger-ui.css", "text/css")):
            r = await client.get(f"{ASSETS}/{name}")
            assert r.status_code == 200 and r.headers["content-type"].startswith(ctype)
            assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert r.headers["x-content-type-options"] == "nosniff"
            again = await client.get(f"{ASSETS}/{name}", headers={"If-None-Match": r.headers["etag"]})
            assert again.status_code == 304 and not again.content
        for name in ("index.html", "..%2Fswagger-ui.css", "nothing.js"):
            r = await client.get(f"{ASSETS}/{name}")
            assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"

