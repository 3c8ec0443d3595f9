"""The media server's HTTP application (quart-trio): static files, describe, uploads."""

from __future__ import annotations

import logging
import time
from types import TracebackType

import msgspec
import trio
from prometheus_client import Gauge
from quart import g, request
from quart.wrappers.response import ResponseBody
from quart_trio import QuartTrio
from quart_trio.wrappers.response import TrioResponse as Response
from werkzeug.exceptions import HTTPException
from werkzeug.http import parse_options_header

from ..metrics import CONTENT_TYPE, CountInFlight, HttpMetrics
from ..problems import Problem, ProblemError, bad_request, not_found
from ._auth import basic_credentials, credentials_match
from ._config import GroupConfig, MediaConfig
from ._flow import FlowBody, FlowConnection, FlowRequest
from ._http import _Unsatisfiable, byte_range, http_date, if_range_holds, is_not_modified
from ._names import BadName, requested_name
from ._storage import Opened, list_files, open_placeholder, open_stored
from ._upload import FORM_OVERHEAD, receive_upload, too_large

__all__ = ["create_app"]

log = logging.getLogger("workup.media")

_READ_CHUNK = 64 * 1024
_THREADS = 8  # concurrent disk calls (reads, writes, renames, listings, resizes)
_DISCARD_SECONDS = 10.0
_REALM = 'Basic realm="workup-media", charset="UTF-8"'


class _MediaApp(QuartTrio):
    asgi_http_class = FlowConnection
    request_class = FlowRequest


class _FileBody(ResponseBody):
    """Streams ``[start, end)`` of an already opened file, a chunk per worker-thread read."""

    def __init__(self, opened: Opened, start: int, end: int, limiter: trio.CapacityLimiter) -> None:
        self.opened, self.offset, self.end, self.limiter = opened, start, end, limiter

    async def __aenter__(self) -> "_FileBody":
        return self

    async def __aexit__(self, exc_type: type, exc: BaseException, tb: TracebackType) -> None:
        self.opened.close()

    def __aiter__(self) -> "_FileBody":
        return self

    async def __anext__(self) -> bytes:
        if self.offset >= self.end:
            raise StopAsyncIteration
        size = min(_READ_CHUNK, self.end - self.offset)
        data = await trio.to_thread.run_sync(self.opened.read_at, self.offset, size, limiter=self.limiter)
        if not data:  # the file shrank under us; stop rather than send garbage
            raise StopAsyncIteration
        self.offset += len(data)
        return data


def _json(payload: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(payload), status=status, content_type="application/json")


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    doc = {"type": problem.type, "title": problem.title, "status": problem.status, "detail": problem.detail}
    response = Response(msgspec.json.encode(doc), status=problem.status, content_type="application/problem+json")
    response.headers.update(headers or {})
    return response


def create_app(config: MediaConfig) -> QuartTrio:
    """The application for ``config``; the group directories must exist (see ``prepare_storage``)."""
    app = _MediaApp("workup.media", static_folder=None)  # no built-in /static route
    app.config.update(MAX_CONTENT_LENGTH=None, RESPONSE_TIMEOUT=None, BODY_TIMEOUT=None)
    app.url_map.merge_slashes = False  # no redirects: "//" in a name is refused like any separator
    storage = config.storage_path
    limiter = trio.CapacityLimiter(_THREADS)
    metrics = HttpMetrics("media")
    _pool_gauges(metrics, limiter)
    app.asgi_app = CountInFlight(app.asgi_app, metrics)  # type: ignore[method-assign,assignment,arg-type]

    # --- metrics (Prometheus text, workup/metrics.py) --------------------------------------------

    @app.before_request
    async def _begin() -> None:
        g.started = time.perf_counter()

    @app.after_request
    async def _count(response: Response) -> Response:
        rule = request.url_rule
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        metrics.observe_request(request.method, rule.rule if rule is not None else "<unmatched>",
                                response.status_code, elapsed)
        return response

    @app.get("/metrics")
    async def _metrics() -> Response:
        return Response(metrics.render(), content_type=CONTENT_TYPE)

    async def thread(fn, *args):
        return await trio.to_thread.run_sync(fn, *args, limiter=limiter)

    def group_or_404(name: str) -> GroupConfig:
        group = config.group(name)
        if group is None:
            raise not_found(f"media group '{name}'")
        return group

    # --- errors: every failure is application/problem+json -----------------------------------

    @app.errorhandler(ProblemError)
    async def on_problem(exc: ProblemError) -> Response:
        return problem_response(exc.problem)

    @app.errorhandler(HTTPException)
    async def on_http(exc: HTTPException) -> Response:
        code = exc.code or 500
        allowed = getattr(exc, "valid_methods", None)  # MethodNotAllowed's
        headers = {"Allow": ", ".join(allowed)} if allowed else None
        return problem_response(ProblemError(code, exc.description or "").problem, headers)

    @app.errorhandler(Exception)
    async def on_error(exc: Exception) -> Response:
        log.exception("media request failed")
        return problem_response(ProblemError(500, "internal error").problem)

    # --- describe -------------------------------------------------------------------------------

    @app.get("/describe")
    async def describe() -> Response:
        return _json({"success": True, "path": "/static/", "groups": [g.name for g in config.groups]})

    @app.get("/describe/<group>")
    async def describe_group(group: str) -> Response:
        g = group_or_404(group)
        files = await thread(list_files, storage / g.name)
        return _json({"success": True, "path": f"/static/{g.name}/", "mimeType": g.mime_type,
                      "mimeTypes": g.mime_types, "files": files})

    # --- static files ---------------------------------------------------------------------------

    @app.route("/static/<group>/<path:file>", methods=["GET", "HEAD"])
    async def static_file(group: str, file: str) -> Response:
        g = group_or_404(group)
        try:
            name = requested_name(file)
        except BadName as exc:
            raise bad_request(str(exc)) from None
        opened = await thread(open_stored, storage / g.name, name)
        placeholder = opened is None
        if opened is None:
            opened = await thread(open_placeholder, g.placeholder_path())
            if opened is None:
                raise ProblemError(500, f"the placeholder of group '{g.name}' is missing")
        try:
            return _file_response(opened, placeholder, limiter)
        except BaseException:
            opened.close()
            raise

    # --- uploads --------------------------------------------------------------------------------

    @app.post("/upload/<group>")
    async def upload(group: str) -> Response:
        body: FlowBody = request.body  # type: ignore[assignment]
        try:
            name = await _upload(group)
        except ProblemError as exc:
            headers = {"WWW-Authenticate": _REALM} if exc.status == 401 else {}
            if not body.complete and exc.status != 408:  # a silent client gets no more waiting
                # read (and drop) a bounded amount more, so a client that is still sending sees
                # this answer instead of a reset; then close the connection. A body declared too
                # large is not read at all (a client that waits for "100 Continue" never sends it).
                declared = request.content_length
                if declared is None or declared <= config.max_upload_bytes + FORM_OVERHEAD:
                    await _discard(body, config.max_upload_bytes)
                headers["Connection"] = "close"
            return problem_response(exc.problem, headers)
        return _json({"success": True, "path": f"/static/{group}/{name}"}, status=201)

    async def _upload(group: str) -> str:
        if not credentials_match(basic_credentials(request.headers.get("Authorization")),
                                 config.upload_user, config.upload_password):
            raise ProblemError(401, "valid upload credentials are required (HTTP Basic)")
        g = group_or_404(group)
        kind, options = parse_options_header(request.headers.get("Content-Type", ""))
        boundary = options.get("boundary", "")
        if kind != "multipart/form-data" or not boundary:
            raise bad_request("the body must be multipart/form-data with fields 'resource' and 'filename'")
        declared = request.content_length
        if declared is not None and declared > config.max_upload_bytes + FORM_OVERHEAD:
            raise too_large(config.max_upload_bytes)
        return await receive_upload(request.body, boundary.encode("latin-1"), group=g,
                                    group_dir=storage / g.name, limit=config.max_upload_bytes,
                                    limiter=limiter)

    return app


def _pool_gauges(metrics: HttpMetrics, limiter: trio.CapacityLimiter) -> None:
    """The disk-thread pool: its size and the threads busy, read when scraped."""
    size = Gauge("workup_media_disk_threads", "Disk calls that may run at once.", registry=metrics.registry)
    size.set_function(lambda: float(limiter.total_tokens))
    busy = Gauge("workup_media_disk_threads_busy", "Disk calls running now.", registry=metrics.registry)
    busy.set_function(lambda: float(limiter.borrowed_tokens))


async def _discard(body: FlowBody, cap: int) -> None:
    dropped = 0
    with trio.move_on_after(_DISCARD_SECONDS):
        async for chunk in body:
            dropped += len(chunk)
            if dropped > cap:
                break


def _file_response(opened: Opened, placeholder: bool, limiter: trio.CapacityLimiter) -> Response:
    headers = {
        "ETag": opened.etag,
        "Last-Modified": http_date(opened.mtime),
        "Cache-Control": "no-cache",  # revalidate: an upload may replace the file (or the placeholder)
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
    }
    if placeholder:
        headers["X-Placeholder"] = "true"
    h = request.headers
    if is_not_modified(opened.etag, opened.mtime, h.get("If-None-Match"), h.get("If-Modified-Since")):
        opened.close()
        return Response(None, status=304, headers=headers)
    wanted = h.get("Range") if if_range_holds(opened.etag, opened.mtime, h.get("If-Range")) else None
    span = byte_range(wanted, opened.size)
    if isinstance(span, _Unsatisfiable):  # the one UNSATISFIABLE, narrowed for mypy
        opened.close()
        headers["Content-Range"] = f"bytes */{opened.size}"
        detail = f"the range {wanted!r} is outside the {opened.size} bytes of the file"
        return problem_response(ProblemError(416, detail).problem, headers)
    status, (start, end) = (200, (0, opened.size)) if span is None else (206, span)
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{opened.size}"
    headers["Content-Length"] = str(end - start)
    headers["Content-Type"] = opened.content_type
    if request.method == "HEAD":
        opened.close()
        return Response(None, status=status, headers=headers)
    return Response(_FileBody(opened, start, end, limiter), status=status, headers=headers)
