"""``/docs``: Swagger UI on ``/openapi.json``, from the files the ``swagger_ui_bundle`` package
ships (no CDN: every byte comes from this gateway).

The assets live under a versioned path (``/docs/assets/swagger-ui-<version>/<file>``), so they
are cached for a year as immutable; the page itself is revalidated on every visit. The page runs
no inline script, which lets its ``Content-Security-Policy`` allow scripts from this origin only.
"""

from __future__ import annotations

import hashlib
import mimetypes
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

from quart import Blueprint, Response, request

from ...problems import ProblemError

__all__ = ["blueprint", "PAGE", "ASSETS"]

# the package's own `swagger_ui_path`, found without importing its untyped module
_BUNDLE: Traversable = next(p for p in (files("swagger_ui_bundle") / "vendor").iterdir()
                            if p.name.startswith("swagger-ui-"))
PAGE = "/docs"
ASSETS = f"{PAGE}/assets/{_BUNDLE.name}"   # the bundle's folder names its version
_SERVED = (".js", ".css", ".png", ".map")
# the files that may be asked for: a name outside them is 404 before the cache below, which holds
# only these (a cache of every name a client makes up would grow without bound)
_FILES = frozenset(p.name for p in _BUNDLE.iterdir()
                   if p.name.endswith(_SERVED) and not p.name.startswith(".") and p.is_file())
# Swagger UI styles some elements inline and draws its icons as data: images
_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
           "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

blueprint = Blueprint("docs", __name__)

_HTML = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>WorkUp API</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="{PAGE}/init.js"></script>
</body>
</html>
""".encode()

# validatorUrl null: Swagger UI would otherwise send the document to an outside validator
_INIT = b"""window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    displayOperationId: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""
_PAGE_TAG = hashlib.sha256(_HTML).hexdigest()[:32]
_INIT_TAG = hashlib.sha256(_INIT).hexdigest()[:32]


def _asset(name: str) -> tuple[bytes, str, str] | None:
    """(bytes, content type, etag) of a file of the bundle, None when it ships no such file."""
    return _read_asset(name) if name in _FILES else None


@cache
def _read_asset(name: str) -> tuple[bytes, str, str]:
    data = (_BUNDLE / name).read_bytes()
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype.endswith("javascript"):
        ctype += "; charset=utf-8"
    return data, ctype, hashlib.sha256(data).hexdigest()[:32]


async def _static(data: bytes, ctype: str, etag: str, cache_control: str) -> Response:
    response = Response(data, content_type=ctype, headers={"Cache-Control": cache_control})
    response.set_etag(etag)
    return await response.make_conditional(request)   # If-None-Match: 304


@blueprint.get(PAGE)
async def page() -> Response:
    response = await _static(_HTML, "text/html; charset=utf-8", _PAGE_TAG, "no-cache")
    response.headers["Content-Security-Policy"] = _POLICY
    return response


@blueprint.get(f"{PAGE}/init.js")
async def init() -> Response:
    return await _static(_INIT, "text/javascript; charset=utf-8", _INIT_TAG, "no-cache")


@blueprint.get(f"{ASSETS}/<name>")
async def asset(name: str) -> Response:
    found = _asset(name)
    if found is None:
        raise ProblemError(404, f"no such Swagger UI file: {name}")
    data, ctype, etag = found
    return await _static(data, ctype, etag, "public, max-age=31536000, immutable")

