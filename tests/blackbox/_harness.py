"""Black-box harness: `workup up` as a subprocess, spoken to over real HTTP only.

Nothing here imports WorkUp: the suite is what a stranger would write from `docs/api.md`
(the binding REST contract). `start_workup` picks free ports, sets the admin, upload and JWT
secrets through the documented environment variables, waits for `GET /health` and hands back a
`Running` whose `stop()` sends SIGTERM and returns the exit code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx

REPO = Path(__file__).resolve().parents[2]
PYTHON = REPO / ".venv" / "bin" / "python"
if not PYTHON.exists():                      # CI may run the suite from another interpreter
    PYTHON = Path(sys.executable)

API = "/api/v1"
PASSWORD = "contract-pass-1"
JWT_KEY = "contract-audit-signing-key-" + "k" * 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


@dataclass
class Running:
    proc: subprocess.Popen
    base_url: str
    media_url: str
    env: dict[str, str]
    log_path: Path

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait (bounded); the exit code (SIGKILL and -9 after the timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                return -9
        return self.proc.returncode


def start_workup(data_dir: Path, extra_env: dict[str, str] | None = None, *,
                 startup_timeout: float = 60) -> Running:
    port, media_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKUP_")}
    env.update({
        "WORKUP_ADMIN_EMAIL": unique_email("admin"),
        "WORKUP_ADMIN_PASSWORD": "admin-" + uuid.uuid4().hex[:10],
        "UPLOAD_USER": "uploader",
        "UPLOAD_PASSWORD": "upload-" + uuid.uuid4().hex[:10],
        "WORKUP_JWT_KEY": JWT_KEY,
        "WORKUP_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    })
    log_path = data_dir / "workup-up.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(PYTHON), "-m", "workup", "up", "--port", str(port), "--media-port", str(media_port),
             "--data-dir", str(data_dir / "data")],
            cwd=str(REPO), env=env, stdout=log, stderr=subprocess.STDOUT)
    running = Running(proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{media_port}", env, log_path)
    deadline = time.monotonic() + startup_timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"workup up exited with {proc.returncode} during start-up:\n{running.log_tail()}")
        try:
            if httpx.get(running.base_url + "/health", timeout=2).status_code == 200:
                return running
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            running.stop()
            raise AssertionError(f"GET /health did not answer 200 within {startup_timeout}s:\n{running.log_tail()}")
        time.sleep(0.2)


def hold(running: Running, stop: Any, what: str) -> Iterator[Running]:
    """Fixture body: yield `running`, then `stop()` it and assert a clean exit (code 0)."""
    try:
        yield running
    finally:
        code = stop()
    assert code == 0, f"{what} did not exit cleanly on SIGTERM (exit {code}):\n{running.log_tail()}"


# --- tokens: forged with the key we configured, to get expired / badly signed ones -----------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def resign(token: str, key: str = JWT_KEY, **claims: Any) -> str:
    """`token` with some claims changed, signed HS256 with `key`."""
    header, payload, _ = token.split(".")
    body = {**json.loads(_unb64(payload)), **claims}
    signing_input = f"{header}.{_b64(json.dumps(body).encode())}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- accounts and assertions -----------------------------------------------------------------

@dataclass
class Account:
    id: str
    role: str
    token: str
    email: str
    password: str = PASSWORD
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.token)


def _register(http: httpx.Client, kind: str, role: str, body: dict[str, Any]) -> Account:
    r = http.post(f"{API}/users/{kind}/register", json=body)
    assert r.status_code == 201, f"register {role}: {r.status_code} {r.text}"
    answer = r.json()
    assert answer["userType"] == role, answer
    return Account(answer["userId"], role, answer["authToken"], body["email"], body["password"])


def register_client(http: httpx.Client, **fields: Any) -> Account:
    body = {"email": unique_email("client"), "password": PASSWORD, "clientName": "Acme Ltd", **fields}
    return _register(http, "clients", "CLIENT", body)


def register_freelancer(http: httpx.Client, **fields: Any) -> Account:
    body = {"email": unique_email("freelancer"), "password": PASSWORD, "fullName": "Fay Lancer", **fields}
    return _register(http, "freelancers", "FREELANCER", body)


def login_admin(http: httpx.Client, env: dict[str, str]) -> Account:
    email, password = env["WORKUP_ADMIN_EMAIL"], env["WORKUP_ADMIN_PASSWORD"]
    r = http.post(f"{API}/users/login", json={"email": email, "password": password})
    assert r.status_code == 200, f"admin login: {r.status_code} {r.text}"
    answer = r.json()
    assert answer["userType"] == "ADMIN", answer
    return Account(answer["userId"], "ADMIN", answer["authToken"], email, password)


def _describe(r: httpx.Response) -> str:
    return f"{r.request.method} {r.request.url.path}?{r.request.url.query.decode()} -> {r.status_code} {r.text[:400]}"


def expect(r: httpx.Response, status: int) -> Any:
    """Assert the status; the decoded JSON body (None when empty)."""
    assert r.status_code == status, f"expected {status}: {_describe(r)}"
    if not r.content:
        return None
    if r.headers.get("content-type", "").split(";")[0].strip().endswith("json"):
        return r.json()
    return r.text


def problem(r: httpx.Response, status: int, *, fields: tuple[str, ...] = ()) -> dict[str, Any]:
    """An RFC 9457 answer with `status`; with `fields`, a validation failure naming each of them."""
    assert r.status_code == status, f"expected {status}: {_describe(r)}"
    media_type = r.headers.get("content-type", "").split(";")[0].strip()
    assert media_type == "application/problem+json", f"content-type {media_type!r}: {_describe(r)}"
    body = r.json()
    missing = {"type", "title", "status", "detail"} - body.keys()
    assert not missing, f"problem lacks {missing}: {body}"
    assert body["status"] == status, body
    assert "Traceback" not in r.text, r.text
    if fields:
        errors = body.get("errors")
        assert isinstance(errors, list) and errors, f"validation problem without errors[]: {body}"
        for e in errors:
            assert {"field", "message"} <= e.keys(), e
        named = " ".join(str(e["field"]) for e in errors)
        for name in fields:
            assert name in named, f"no error names {name!r}: {errors}"
    return body


def has_fields(body: Any, names: str | set[str]) -> dict[str, Any]:
    """`body` is an object with every field in `names` (space-separated) and only camelCase names."""
    wanted = set(names.split()) if isinstance(names, str) else names
    assert isinstance(body, dict), f"not an object: {body!r}"
    missing = wanted - body.keys()
    assert not missing, f"missing fields {sorted(missing)} in {body}"
    snake = [k for k in body if "_" in k or k[:1].isupper()]
    assert not snake, f"field names not camelCase: {snake} in {body}"
    return body


def is_money(value: Any, expected: float | None = None) -> None:
    assert isinstance(value, (int, float)) and not isinstance(value, bool), f"money not a JSON number: {value!r}"
    if expected is not None:
        assert round(value * 100) == round(expected * 100) and abs(value - expected) < 1e-9, (value, expected)


_RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")


def timestamps(body: dict[str, Any], *names: str) -> None:
    """Each named field is an RFC 3339 UTC timestamp."""
    for name in names:
        assert isinstance(body[name], str) and _RFC3339_UTC.match(body[name]), f"{name}={body[name]!r} is not RFC 3339 UTC"


def wait_until(check: Any, timeout: float = 10, interval: float = 0.1) -> Any:
    """Poll `check()` until it returns something truthy (bounded); its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
