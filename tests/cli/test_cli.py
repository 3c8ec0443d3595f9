import subprocess
import sys


def run(*args, env=None):
    import os
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "workup", *args], capture_output=True, text=True,
                          env=e, timeout=60)


def test_every_role_has_help():
    for role in ("up", "gateway", "worker", "control", "scale", "media", "bench"):
        r = run(role, "--help")
        assert r.returncode == 0, (role, r.stderr)
        assert "Usage: workup " + role in r.stdout


def test_unknown_subcommand_is_exit_2():
    r = run("fly")
    assert r.returncode == 2 and "No such command" in r.stderr and "Traceback" not in r.stderr


def test_bad_setting_is_one_line_exit_2():
    r = run("up", "--port", "18099", env={"WORKUP_AMQP_URL": "http://nope"})
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "amqp_url" in r.stderr and "Traceback" not in r.stderr


def test_unreachable_server_is_one_line_exit_1(tmp_path):
    r = run("up", "--port", "0", "--media-port", "0", "--data-dir", str(tmp_path),
            env={"WORKUP_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"})
    assert r.returncode == 1, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("workup: ") and "127.0.0.1:1" in last and "Traceback" not in r.stderr
