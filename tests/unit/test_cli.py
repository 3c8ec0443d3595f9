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
