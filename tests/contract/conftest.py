"""One `workup up` (embedded stores) for the whole contract suite, stopped with SIGTERM at the end."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from ._harness import Account, Running, login_admin, register_client, register_freelancer, start_workup


@pytest.fixture(scope="session")
def system() -> Iterator[Running]:
    with tempfile.TemporaryDirectory(prefix="workup-contract-") as tmp:
        running = start_workup(Path(tmp))
        try:
            yield running
        finally:
            code = running.stop()
        assert code == 0, f"workup up did not exit cleanly on SIGTERM (exit {code}):\n{running.log_tail()}"


@pytest.fixture(scope="session")
def http(system: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.base_url, timeout=20) as client:
        yield client


@pytest.fixture(scope="session")
def media(system: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.media_url, timeout=20) as client:
        yield client


@pytest.fixture(scope="session")
def admin(http: httpx.Client, system: Running) -> Account:
    return login_admin(http, system.env)


@pytest.fixture(scope="session")
def client(http: httpx.Client) -> Account:
    """A client shared by the tests that do not change its state (register your own otherwise)."""
    return register_client(http)


@pytest.fixture(scope="session")
def freelancer(http: httpx.Client) -> Account:
    """A freelancer shared by the tests that do not change its state."""
    return register_freelancer(http)
