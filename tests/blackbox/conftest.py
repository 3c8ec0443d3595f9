"""One `workup up` (embedded stores) for this package of tests, stopped with SIGTERM after its last test."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from ._harness import Account, Running, hold, login_admin, register_client, register_freelancer, start_workup


@pytest.fixture(scope="package")
def system() -> Iterator[Running]:
    with tempfile.TemporaryDirectory(prefix="workup-contract-") as tmp:
        running = start_workup(Path(tmp))
        yield from hold(running, running.stop, "workup up")


@pytest.fixture(scope="package")
def http(system: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.base_url, timeout=20) as client:
        yield client


@pytest.fixture(scope="package")
def media(system: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.media_url, timeout=20) as client:
        yield client


@pytest.fixture(scope="package")
def admin(http: httpx.Client, system: Running) -> Account:
    return login_admin(http, system.env)


@pytest.fixture(scope="package")
def client(http: httpx.Client) -> Account:
    """A client shared by the tests that do not change its state (register your own otherwise)."""
    return register_client(http)


@pytest.fixture(scope="package")
def freelancer(http: httpx.Client) -> Account:
    """A freelancer shared by the tests that do not change its state."""
    return register_freelancer(http)


# --- the distributed subset (test_distributed.py) ------------------------------------------------

_DISTRIBUTED_MODULE = Path(__file__).with_name("test_distributed.py")


def _is_distributed(item: pytest.Item) -> bool:
    return Path(str(item.path)) == _DISTRIBUTED_MODULE


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the distributed subset after the rest of this folder: its system starts meanwhile."""
    mine = [i for i, item in enumerate(items) if Path(str(item.path)).parent == _DISTRIBUTED_MODULE.parent]
    if not mine:
        return
    block = items[mine[0]:mine[-1] + 1]
    block.sort(key=_is_distributed)                  # stable: the order within each part is kept
    items[mine[0]:mine[-1] + 1] = block


@pytest.fixture(scope="package", autouse=True)
def distributed_system(request: pytest.FixtureRequest) -> Iterator[object]:
    """Begins the distributed `workup up` in the background when this run includes any of
    test_distributed.py (None otherwise); stops it and drops its stores at the end."""
    if not any(_is_distributed(item) for item in request.session.items):
        yield None
        return
    from ._distributed import Distributed
    handle = Distributed()
    handle.begin()
    try:
        yield handle
    finally:
        handle.close()
