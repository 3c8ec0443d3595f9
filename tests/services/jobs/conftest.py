import pytest

from ._fixtures import keyspace_prefix  # noqa: F401
from ._http import jobs_system, system_settings


@pytest.fixture(params=["embedded", "distributed"])
async def system(request, tmp_path):
    """The gateway + jobs + contracts (+ a payments double), embedded or on RabbitMQ + Cassandra + Redis."""
    async with jobs_system(tmp_path, system_settings(tmp_path, request.param, request)) as s:
        yield s
