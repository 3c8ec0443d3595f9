"""Shared session fixtures: where the real dev services are, checked once per session.

Each fixture reads its WORKUP_TEST_* variable (loopback defaults, as `ops/dev/services up`
starts them), makes one short protocol exchange with the server (ops/dev/servicecheck.py,
standard library only) and fails the test (never skips) when it does not answer.
Test folders add their own conftest.py for anything specific.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from workup.testing import env_value
from workup.transport.accounts import dev_accounts_dir
from workup.transport.identity import identity_env

# the session's identity keys, for every process it starts too (workup/transport/identity.py)
os.environ.update(identity_env())
# On the dev node, every `workup gateway/worker/control/scale` a test starts logs in as its own
# role's account (workup/transport/accounts.py); the test's own connections use workup-test.
if not os.environ.get("WORKUP_TEST_AMQP_URL") and dev_accounts_dir().is_dir():
    os.environ.setdefault("WORKUP_AMQP_ACCOUNTS_DIR", str(dev_accounts_dir()))

_CHECK_PATH = Path(__file__).resolve().parent.parent / "ops" / "dev" / "servicecheck.py"
_spec = importlib.util.spec_from_file_location("workup_servicecheck", _CHECK_PATH)
servicecheck = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(servicecheck)

# service name (as ops/dev/services calls it) -> its test variable
_ENV = {
    "rabbitmq": "WORKUP_TEST_AMQP_URL",
    "redis": "WORKUP_TEST_REDIS_URL",
    "postgres": "WORKUP_TEST_POSTGRES_URL",
    "ferretdb": "WORKUP_TEST_MONGO_URL",
    "cassandra": "WORKUP_TEST_CASSANDRA_HOSTS",
}


def service_url(name: str) -> str:
    """The configured address of `name`, after checking that it answers (else pytest.fail)."""
    url = env_value(_ENV[name]) if name == "rabbitmq" else os.environ.get(_ENV[name]) or servicecheck.DEFAULT_URLS[name]
    problem = servicecheck.check(name, url)
    if problem:
        pytest.fail(
            f"service {name} not reachable at {url} ({problem}); "
            f"start it with ops/dev/services up {name} (or set {_ENV[name]})",
            pytrace=False,
        )
    if name == "rabbitmq" and not os.environ.get(_ENV[name]) and not (dev_accounts_dir() / "workup-test").is_file():
        pytest.fail(f"no broker accounts in {dev_accounts_dir()}: run ops/dev/services up rabbitmq "
                    f"(or set {_ENV[name]})", pytrace=False)
    return url


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return service_url("rabbitmq")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return service_url("redis")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return service_url("postgres")


@pytest.fixture(scope="session")
def mongo_url() -> str:
    return service_url("ferretdb")


@pytest.fixture(scope="session")
def cassandra_hosts() -> str:
    """Comma-separated host:port list, e.g. "127.0.0.1:9042"."""
    return service_url("cassandra")
