import pytest

from workup.settings import SettingsError, ensure_secret, load_settings, read_secret


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
