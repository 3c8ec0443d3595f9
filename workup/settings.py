"""One place for configuration: ``WORKUP_*`` environment variables, overridden by CLI flags.

Every role reads a :class:`Settings`; a bad value is a :class:`SettingsError` whose message is one
line, which the CLI prints before exiting with code 2. Every knob is a field here, read from the
variables :func:`env_names` gives; the CLI flags of the same knobs (``workup/cli/_options.py``)
only override it, and ``docs/configuration.md`` lists them all (``tests/test_settings.py`` checks).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Literal, Mapping, overload

import msgspec

__all__ = ["Settings", "SettingsError", "load_settings", "read_secret", "ensure_secret", "create_secret_file", "env_names",
           "url_with_password",
           "BOUNDS", "LOG_LEVELS", "LOG_FORMATS"]

# the levels `--log-level` and the `set-logging-level` control command accept (WARN is read as WARNING)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# `--log-format`: a line for people, or one JSON object a line for a log pipeline (workup/logs.py)
LOG_FORMATS = ("text", "json")

# numeric knobs: field -> (lowest, highest) allowed; the CLI flags use the same bounds
BOUNDS: dict[str, tuple[float, float]] = {
    "port": (0, 65535),
    "media_port": (0, 65535),
    "request_timeout": (0.1, 300),
    "processes": (1, 64),
    "concurrency": (1, 10_000),
    "grace": (0, 3600),
    "jwt_lifetime": (60, 30 * 24 * 3600),
    "login_limit_account": (1, 1_000_000),
    "login_limit_address": (1, 1_000_000),
    "login_window": (1, 24 * 3600),
    "register_limit_address": (1, 1_000_000),
    "register_window": (1, 24 * 3600),
    "http_idle_timeout": (1, 3600),
    "cache_timeout": (0.01, 10),
    "cache_retry": (0.1, 300),
    "metrics_port": (0, 65535),
}


class SettingsError(ValueError):
    """A configuration value is missing or malformed; ``str()`` is a one-line message."""


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # servers; None means the embedded default of `workup up`
    amqp_url: str | None = None
    redis_url: str | None = None
    users_mongo_url: str | None = None
    payments_postgres_url: str | None = None
    cassandra_hosts: str | None = None
    cassandra_keyspace_prefix: str = "workup"   # keyspaces <prefix>_jobs, <prefix>_contracts
    # secrets (the *_file variants are read by read_secret)
    jwt_key: str | None = None
    jwt_key_file: str | None = None
    control_key: str | None = None
    control_key_file: str | None = None
    admin_email: str | None = None
    admin_password: str | None = None
    upload_user: str | None = None
    upload_password: str | None = None
    # passwords kept out of the environment (Docker secrets): the file's content replaces the
    # password of amqp_url / payments_postgres_url, or is the upload password
    amqp_password_file: str | None = None
    payments_postgres_password_file: str | None = None
    upload_password_file: str | None = None
    # one broker account per role (workup/transport/accounts.py): a folder of password files
    # workup-<role>; each role logs in to amqp_url as its own account (ops/dev/services makes one)
    amqp_accounts_dir: str | None = None
    # `workup up` and the servers
    data_dir: str = "./.workup"
    host: str = "127.0.0.1"
    port: int = 8080
    media_port: int = 8910
    log_level: str = "INFO"
    # RabbitMQ names (`<prefix>.<service>`, `<prefix>.events`) and the gateway's deadline
    amqp_prefix: str = "workup"
    request_timeout: float = 10.0
    # `workup worker`: processes, commands in flight per process (= AMQP prefetch), drain time
    processes: int = 1
    concurrency: int = 64
    grace: float = 30.0
    # `workup scale --provider swarm` and `workup control ... spawn-machine`
    prometheus_url: str = "http://127.0.0.1:9090"
    swarm_token: str | None = None
    swarm_manager: str | None = None
    do_api_url: str = "https://api.digitalocean.com"
    # the gateway's tokens, abuse limits and slow clients (docs/security.md)
    jwt_lifetime: float = 24 * 3600.0      # a token's exp - iat, checked on every token
    login_limit_account: int = 20          # logins that did not succeed, per account and window
    login_limit_address: int = 200         # logins that did not succeed, per client address and window
    login_window: float = 900.0
    register_limit_address: int = 300      # registrations per client address and window
    register_window: float = 3600.0
    http_idle_timeout: float = 20.0        # headers complete, and keep-alive idle, within this
    # Redis as an optional cache: the bound of one operation, and how long it is bypassed after
    # a failure before one probe (workup/cache/_guarded.py)
    cache_timeout: float = 0.25
    cache_retry: float = 1.0
    # who sent a request (workup/transport/identity.py): the gateway's Ed25519 key, which only the
    # gateway holds, its public half for the services, and the deployment's service key
    gateway_key: str | None = None
    gateway_key_file: str | None = None
    gateway_public_key: str | None = None
    gateway_public_key_file: str | None = None
    service_key: str | None = None
    service_key_file: str | None = None
    # observability: the log lines' format, and the first port of the worker processes' metrics
    # listeners (process i of a supervisor listens on metrics_port + i; 0 = no listener)
    log_format: str = "text"
    metrics_port: int = 0

    def __post_init__(self) -> None:
        for name, (low, high) in BOUNDS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                kind = "a port number between" if name.endswith("port") else "between"
                raise SettingsError(f"{name} must be {kind} {low} and {high}, got {value}")
        if self.log_level.upper() not in LOG_LEVELS:
            raise SettingsError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        self.log_level = self.log_level.upper()
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(f"log_format must be one of {', '.join(LOG_FORMATS)}, got {self.log_format!r}")
        if self.amqp_url is not None and not self.amqp_url.startswith(("amqp://", "amqps://")):
            raise SettingsError(f"amqp_url must start with amqp:// or amqps://, got {self.amqp_url!r}")
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(f"redis_url must start with redis://, got {self.redis_url!r}")
        if self.users_mongo_url is not None and not self.users_mongo_url.startswith(("mongodb://", "mongodb+srv://")):
            raise SettingsError(f"users_mongo_url must start with mongodb://, got {self.users_mongo_url!r}")
        if self.payments_postgres_url is not None and not self.payments_postgres_url.startswith(("postgresql://", "postgres://")):
            raise SettingsError(f"payments_postgres_url must start with postgresql://, got {self.payments_postgres_url!r}")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def cassandra_contact_points(self) -> list[tuple[str, int]]:
        """``"h1:9042,h2"`` → ``[("h1", 9042), ("h2", 9042)]``."""
        points = []
        for item in (self.cassandra_hosts or "").split(","):
            item = item.strip()
            if not item:
                continue
            host, _, port = item.rpartition(":") if ":" in item else (item, "", "9042")
            if not port.isdigit():
                raise SettingsError(f"cassandra_hosts: bad port in {item!r}")
            points.append((host, int(port)))
        return points


_FIELDS = tuple(Settings.__struct_fields__)
_INTS = {f.name for f in msgspec.structs.fields(Settings) if f.type is int}
_FLOATS = {f.name for f in msgspec.structs.fields(Settings) if f.type is float}
# variables that are not WORKUP_<FIELD>, in the order they are tried
_ENV_NAMES: dict[str, tuple[str, ...]] = {
    "upload_user": ("WORKUP_UPLOAD_USER", "UPLOAD_USER"),
    "upload_password": ("WORKUP_UPLOAD_PASSWORD", "UPLOAD_PASSWORD"),
    "do_api_url": ("DIGITALOCEAN_API_URL",),
}


def env_names(field: str) -> tuple[str, ...]:
    """The environment variables a :class:`Settings` field is read from, first found wins."""
    return _ENV_NAMES.get(field, (f"WORKUP_{field.upper()}",))


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the variables of :func:`env_names` (``WORKUP_<FIELD>``), then ``overrides``
    (CLI flags; ``None`` values are ignored)."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for name in _FIELDS:
        for key in env_names(name):
            if env.get(key):
                raw[name] = env[key]
                break
    for name, value in (overrides or {}).items():
        if value is not None:
            raw[name] = value
    for name in (_INTS | _FLOATS) & raw.keys():
        raw[name] = _number(name, raw[name])
    try:
        settings = msgspec.convert(raw, Settings)
    except msgspec.ValidationError as exc:
        raise SettingsError(str(exc)) from None
    return _with_password_files(settings)


def _with_password_files(s: Settings) -> Settings:
    """Put the ``*_PASSWORD_FILE`` secrets where they are used: into the server URLs' password,
    and into ``upload_password``."""
    changes: dict[str, str | None] = {}
    for url_field, file_field in (("amqp_url", "amqp_password_file"),
                                  ("payments_postgres_url", "payments_postgres_password_file")):
        path, url = getattr(s, file_field), getattr(s, url_field)
        if path:
            if url is None:
                raise SettingsError(f"{file_field} is set but {url_field} is not")
            changes[url_field] = url_with_password(url, read_secret(None, path, file_field) or "")
    if s.upload_password_file:
        changes["upload_password"] = read_secret(None, s.upload_password_file, "upload_password_file")
    return msgspec.structs.replace(s, **changes) if changes else s


def url_with_password(url: str, password: str) -> str:
    """``scheme://user:old@host/...`` with ``password`` (quoted) in place of the old one."""
    from urllib.parse import quote, urlsplit, urlunsplit
    parts = urlsplit(url)
    if parts.username is None:
        raise SettingsError(f"{parts.scheme} URL has no user name to give the password file to: {url!r}")
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(parts.username, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def _number(name: str, value: object) -> object:
    """A numeric field given as text (environment) parsed with a one-line error."""
    if not isinstance(value, str):
        return value
    if name in _INTS:
        if not value.strip().isdigit():
            raise SettingsError(f"{name} must be a whole number, got {value!r}")
        return int(value)
    try:
        return float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {value!r}") from None


def read_secret(value: str | None, file: str | None, name: str) -> str | None:
    """A secret given directly or as a file path (``*_FILE``); the file wins only when set."""
    if file:
        try:
            return Path(file).read_text().strip()
        except OSError as exc:
            raise SettingsError(f"{name}: cannot read {file}: {exc.strerror}") from None
    return value


def ensure_secret(data_dir: Path, filename: str, nbytes: int = 32) -> str:
    """Read a secret kept in the data directory, creating it (mode 0600) on first use."""
    path = data_dir / filename
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    return create_secret_file(path, secrets.token_urlsafe(nbytes))[0]


def create_secret_file(path: Path, value: str) -> tuple[str, bool]:
    """Make ``path`` (mode 0600) hold ``value`` unless another process made it first: returns
    the value it holds and whether it is ours. Written aside and linked into place, since a link
    appears whole or not at all: processes starting together on one data directory all read the
    one secret that won."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        return path.read_text().strip(), False
    finally:
        tmp.unlink()
    return value, True


# -- control plane ---------------------------------------------------------------------------
__all__ += ["load_control_secret"]


@overload
def load_control_secret(settings: Settings, *, create: Literal[True]) -> str: ...
@overload
def load_control_secret(settings: Settings, *, create: bool) -> str | None: ...
def load_control_secret(settings: Settings, *, create: bool) -> str | None:
    """``WORKUP_CONTROL_KEY`` / ``_FILE``, else the data dir's generated key (created when
    ``create``, as ``workup worker`` and ``workup control`` do so that they agree by default)."""
    secret = read_secret(settings.control_key, settings.control_key_file, "control_key")
    if secret:
        return secret
    path = settings.data_path / "control.key"
    if create or path.exists():
        return ensure_secret(settings.data_path, "control.key")
    return None
