import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from workup.settings import (LOG_LEVELS, Settings, SettingsError, ensure_secret, env_names, load_settings,
                             read_secret)


def test_defaults_without_environment():
    s = load_settings(environ={})
    assert (s.host, s.port, s.media_port, s.data_dir) == ("127.0.0.1", 8080, 8910, "./.workup")
    assert s.amqp_url is None and s.redis_url is None


def test_environment_then_flags_override():
    env = {"WORKUP_PORT": "9000", "WORKUP_HOST": "0.0.0.0", "UPLOAD_USER": "u"}
    s = load_settings({"port": 9100, "media_port": None}, environ=env)
    assert s.port == 9100 and s.host == "0.0.0.0" and s.upload_user == "u" and s.media_port == 8910


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"WORKUP_PORT": "eighty"}, "port must be a whole number"),
        ({"WORKUP_PORT": "70000"}, "between 0 and 65535"),
        ({"WORKUP_AMQP_URL": "http://x"}, "amqp_url"),
        ({"WORKUP_REDIS_URL": "localhost"}, "redis_url"),
        ({"WORKUP_LOG_LEVEL": "LOUD"}, "log_level"),
        ({"WORKUP_PAYMENTS_POSTGRES_URL": "mysql://x"}, "payments_postgres_url"),
    ],
)
def test_bad_values_are_one_line_errors(env, needle):
    with pytest.raises(SettingsError) as info:
        load_settings(environ=env)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_cassandra_contact_points():
    s = load_settings(environ={"WORKUP_CASSANDRA_HOSTS": "a:9043, b"})
    assert s.cassandra_contact_points() == [("a", 9043), ("b", 9042)]


def test_secrets_from_file_and_generated(tmp_path):
    f = tmp_path / "key"
    f.write_text("s3cret\n")
    assert read_secret("inline", str(f), "jwt_key") == "s3cret"
    assert read_secret("inline", None, "jwt_key") == "inline"
    with pytest.raises(SettingsError):
        read_secret(None, str(tmp_path / "missing"), "jwt_key")
    first = ensure_secret(tmp_path / "data", "jwt.key")
    assert first == ensure_secret(tmp_path / "data", "jwt.key") and len(first) >= 32
    assert (tmp_path / "data" / "jwt.key").stat().st_mode & 0o777 == 0o600


# -- one channel: every knob is a field, read from its variables, documented ------------------

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "configuration.md").read_text()
VARIABLE = re.compile(r"\b(?:WORKUP|UPLOAD|DIGITALOCEAN)_[A-Z0-9_]*[A-Z0-9]\b")


def _sources(*folders):
    return "\n".join(p.read_text() for folder in folders for p in sorted((ROOT / folder).rglob("*.py")))


def test_env_names():
    assert env_names("amqp_prefix") == ("WORKUP_AMQP_PREFIX",)
    assert env_names("upload_user") == ("WORKUP_UPLOAD_USER", "UPLOAD_USER")
    assert env_names("do_api_url") == ("DIGITALOCEAN_API_URL",)


def test_every_knob_is_a_field_read_from_its_variable():
    env = {"WORKUP_AMQP_PREFIX": "p1", "WORKUP_REQUEST_TIMEOUT": "2.5", "WORKUP_PROCESSES": "3",
           "WORKUP_CONCURRENCY": "8", "WORKUP_GRACE": "0", "WORKUP_PROMETHEUS_URL": "http://prom:9090",
           "WORKUP_SWARM_TOKEN": "t", "WORKUP_SWARM_MANAGER": "m:2377", "DIGITALOCEAN_API_URL": "http://do"}
    s = load_settings(environ=env)
    assert (s.amqp_prefix, s.request_timeout, s.processes, s.concurrency, s.grace) == ("p1", 2.5, 3, 8, 0.0)
    assert (s.prometheus_url, s.swarm_token, s.swarm_manager, s.do_api_url) == ("http://prom:9090", "t", "m:2377", "http://do")
    d = load_settings(environ={})
    assert (d.amqp_prefix, d.request_timeout, d.processes, d.concurrency, d.grace) == ("workup", 10.0, 1, 64, 30.0)
    assert load_settings({"processes": 5}, environ={"WORKUP_PROCESSES": "3"}).processes == 5


@pytest.mark.parametrize("env, message", [
    ({"WORKUP_PROCESSES": "0"}, "processes must be between 1 and 64, got 0"),
    ({"WORKUP_PROCESSES": "two"}, "processes must be a whole number, got 'two'"),
    ({"WORKUP_CONCURRENCY": "10001"}, "concurrency must be between 1 and 10000, got 10001"),
    ({"WORKUP_GRACE": "soon"}, "grace must be a number, got 'soon'"),
    ({"WORKUP_GRACE": "-1"}, "grace must be between 0 and 3600, got -1.0"),
    ({"WORKUP_REQUEST_TIMEOUT": "0.01"}, "request_timeout must be between 0.1 and 300, got 0.01"),
    ({"WORKUP_MEDIA_PORT": "65536"}, "media_port must be a port number between 0 and 65535, got 65536"),
])
def test_bounds_are_one_line_errors(env, message):
    with pytest.raises(SettingsError) as info:
        load_settings(environ=env)
    assert str(info.value) == message


def test_log_levels_are_the_validated_ones():
    assert all(load_settings(environ={"WORKUP_LOG_LEVEL": level.lower()}).log_level == level for level in LOG_LEVELS)


def test_settings_travel_to_a_child_intact():
    from workup.runtime.child import ChildSpec

    s = load_settings({"amqp_prefix": "p", "concurrency": 3, "grace": 1.5}, environ={})
    spec = ChildSpec(service="echo", settings=s, control_secret="x" * 32, supervisor=1)
    assert msgspec.json.decode(msgspec.json.encode(spec), type=ChildSpec) == spec


def test_every_field_and_its_flag_is_documented():
    from workup.cli._options import FLAGS

    rows = {line.split("|")[1].strip(): line for line in DOC.splitlines() if line.startswith("| `")}
    for field in Settings.__struct_fields__:
        for name in env_names(field):
            assert f"`{name}`" in DOC, f"{name} ({field}) is not in docs/configuration.md"
        if field in FLAGS:
            row = next((line for key, line in rows.items() if f"`{env_names(field)[0]}`" in key), "")
            assert f"`{FLAGS[field].name}`" in row, f"{FLAGS[field].name} is not on the row of {field}"


def test_every_variable_the_code_reads_is_documented_and_back():
    code = set(VARIABLE.findall(_sources("workup")))
    documented = set(VARIABLE.findall(DOC))
    assert code - documented == set(), "read by workup/ but not in docs/configuration.md"
    fields = {name for field in Settings.__struct_fields__ for name in env_names(field)}
    anywhere = set(VARIABLE.findall(_sources("workup", "tests")))
    assert documented - fields - anywhere == set(), "in docs/configuration.md but read nowhere"


def test_password_files_go_into_urls_and_upload_password(tmp_path):
    amqp, pg, upload = tmp_path / "amqp", tmp_path / "pg", tmp_path / "upload"
    amqp.write_text("p@ss/word\n")
    pg.write_text("pg-secret\n")
    upload.write_text("up-secret\n")
    s = load_settings(environ={
        "WORKUP_AMQP_URL": "amqp://gateway:placeholder@rabbit:5672/", "WORKUP_AMQP_PASSWORD_FILE": str(amqp),
        "WORKUP_PAYMENTS_POSTGRES_URL": "postgresql://payments@pg:5432/db",
        "WORKUP_PAYMENTS_POSTGRES_PASSWORD_FILE": str(pg),
        "UPLOAD_PASSWORD": "inline", "WORKUP_UPLOAD_PASSWORD_FILE": str(upload)})
    assert s.amqp_url == "amqp://gateway:p%40ss%2Fword@rabbit:5672/"
    assert s.payments_postgres_url == "postgresql://payments:pg-secret@pg:5432/db"
    assert s.upload_password == "up-secret"


@pytest.mark.parametrize("env, needle", [
    ({"WORKUP_AMQP_PASSWORD_FILE": "/x"}, "amqp_password_file is set but amqp_url is not"),
    ({"WORKUP_AMQP_URL": "amqp://rabbit/", "WORKUP_AMQP_PASSWORD_FILE": "/x"}, "no user name"),
    ({"WORKUP_AMQP_URL": "amqp://u@rabbit/", "WORKUP_AMQP_PASSWORD_FILE": "/nonexistent/x"}, "cannot read"),
])
def test_password_file_errors_are_one_line(env, needle, tmp_path):
    if env.get("WORKUP_AMQP_PASSWORD_FILE") == "/x":
        (tmp_path / "x").write_text("pw")
        env = {**env, "WORKUP_AMQP_PASSWORD_FILE": str(tmp_path / "x")}
    with pytest.raises(SettingsError) as info:
        load_settings(environ=env)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_processes_making_a_secret_at_once_all_read_the_same_one(tmp_path) -> None:
    """``workup worker X --processes N`` and the gateway start together on one data directory:
    the first to make ``control.key`` wins, the others read the whole of it (no File exists, no
    empty read)."""
    script = ("import sys; from pathlib import Path; from workup.settings import ensure_secret; "
              "print(ensure_secret(Path(sys.argv[1]), 'control.key'))")
    for round_ in range(5):
        data = tmp_path / f"data{round_}"
        procs = [subprocess.Popen([sys.executable, "-c", script, str(data)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(8)]
        results = [p.communicate(timeout=60) for p in procs]
        assert [p.returncode for p in procs] == [0] * 8, [err for _, err in results]
        values = {out.strip() for out, _ in results}
        assert len(values) == 1 and len(values.pop()) >= 32
        assert sorted(f.name for f in data.iterdir()) == ["control.key"]     # no temporary left
