"""``docs/api.md`` is in step with the route tables: its route lists are what
``python -m workup.gateway.openapi docs/api.md`` makes from the document the gateway serves."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from workup.gateway.openapi import route_lists, with_route_lists

from ._serve import make_app, served

ROOT = Path(__file__).resolve().parents[2]
API_MD = ROOT / "docs" / "api.md"


async def _served_document() -> dict:
    async with served(make_app()) as (client, _):
        return (await client.get("/openapi.json")).json()


async def test_api_md_lists_every_operation_as_the_gateway_serves_it() -> None:
    doc = await _served_document()
    text = API_MD.read_text()
    assert with_route_lists(text, doc) == text, (
        "docs/api.md is out of step with the route tables: run python -m workup.gateway.openapi docs/api.md")
    listed = set(re.findall(r"^- `([A-Z]+ [^`]+)`", text, re.M))
    served_ops = {f"{method.upper()} {path}" for path, item in doc["paths"].items() for method in item
                  if method != "parameters"} - {"GET /api/v1/notifications"}   # a WebSocket: its own section
    assert listed == served_ops
    assert set(route_lists(doc)) == {"operations", "users", "jobs", "proposals", "contracts", "payments"}


def test_the_module_rewrites_a_stale_list(tmp_path: Path) -> None:
    stale = tmp_path / "api.md"
    text = API_MD.read_text()
    first = re.search(r"^- `POST /api/v1/jobs` .*$", text, re.M)
    assert first is not None
    stale.write_text(text.replace(first.group(0), "- `POST /api/v1/jobs` · nobody · 418 — **Stale.**"))
    subprocess.run([sys.executable, "-m", "workup.gateway.openapi", str(stale)], check=True, cwd=ROOT,
                   capture_output=True, timeout=60)
    assert stale.read_text() == text
