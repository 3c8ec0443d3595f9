import pytest

from workup.services.users.mongo import MongoUserStore
from workup.services.users.sqlite import SqliteUserStore

from ._env import mongo_url, require_mongo


@pytest.fixture(params=["sqlite", "mongo"])
async def store(request, tmp_path):
    """Every users store adapter; the contract suite runs against each."""
    if request.param == "sqlite":
        s = await SqliteUserStore.open(tmp_path / "users.sqlite3")
        try:
            yield s
        finally:
            await s.aclose()
    else:
        url = mongo_url()
        require_mongo(url)
        s = await MongoUserStore.open(url)
        try:
            yield s
        finally:
            await s.drop()
            await s.aclose()
