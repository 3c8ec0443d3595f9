"""Users store on MongoDB (FerretDB on dev and CI machines) through pymongo.

FerretDB has no multi-document transactions, so everything that must be atomic lives in one
document: the user with its list items, and the outbox flags (``wallet_pending`` written in the
same insert, ``revoke_pending`` in the same update that closes the account). Email uniqueness
across roles is a unique index on the lower-cased email.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pymongo
import trio
from pymongo.errors import OperationFailure

from ...runtime.inbox import Recorded
from .records import UserRecord
from .store import OUTBOX_FLAGS, DriverOps, DriverStore, EmailTaken, Threaded, from_document, to_document

__all__ = ["MongoUserStore"]

_COLLECTION = "users"
_DEFAULT_DB = "workup_users"


def _client(url: str, pool_size: int) -> pymongo.MongoClient:
    return pymongo.MongoClient(url, maxPoolSize=pool_size, tz_aware=True, serverSelectionTimeoutMS=5000,
                               connectTimeoutMS=5000, appname="workup-users")


def _to_mongo(user: UserRecord) -> dict[str, Any]:
    doc = to_document(user)
    doc["_id"] = doc.pop("id")
    return doc


def _from_mongo(doc: dict[str, Any]) -> UserRecord:
    doc["id"] = doc.pop("_id")
    return from_document(doc)


class MongoUserStore(DriverStore):
    _ops: DriverOps  # set below, once the operations are defined

    def __init__(self, url: str, pool_size: int = 8) -> None:
        self._url = url
        self._threads = Threaded(pool_size)
        self._client = _client(url, pool_size)
        # clients replaced by resize_pool, closed once their in-flight calls are done
        self._in_flight: dict[pymongo.MongoClient, int] = {}
        self._retired: set[pymongo.MongoClient] = set()

    @classmethod
    async def open(cls, url: str, pool_size: int = 8) -> "MongoUserStore":
        store = await trio.to_thread.run_sync(cls, url, pool_size)
        await store._call(_setup)
        return store

    def _collection(self, client: pymongo.MongoClient):
        return client.get_default_database(_DEFAULT_DB)[_COLLECTION]

    async def _call(self, fn, *args):
        client = self._client
        self._in_flight[client] = self._in_flight.get(client, 0) + 1
        try:
            return await self._threads.run(fn, self._collection(client), *args)
        finally:
            self._in_flight[client] -= 1
            if client in self._retired and not self._in_flight[client]:
                await self._close_client(client)

    async def _close_client(self, client: pymongo.MongoClient) -> None:
        self._retired.discard(client)
        self._in_flight.pop(client, None)
        await trio.to_thread.run_sync(client.close)

    # --- port (the rest comes from DriverStore) -------------------------------------------------

    def pool_size(self) -> int:
        return self._threads.size

    async def resize_pool(self, size: int) -> None:
        """pymongo cannot resize a client's pool: open a new client with the new
        ``maxPoolSize``; the old one is closed when its in-flight calls finish."""
        size = max(1, size)
        old, self._client = self._client, await trio.to_thread.run_sync(_client, self._url, size)
        self._threads.resize(size)
        if self._in_flight.get(old):
            self._retired.add(old)
        else:
            await self._close_client(old)

    async def aclose(self) -> None:
        await self._close_client(self._client)

    async def drop(self) -> None:
        """Drop the whole database (tests)."""
        await self._threads.run(lambda: self._client.drop_database(self._client.get_default_database(_DEFAULT_DB)))


def _is_duplicate(exc: OperationFailure) -> bool:
    """MongoDB says 11000 (DuplicateKeyError); FerretDB 1.24 on SQLite says so on insert but
    reports an *update* that breaks a unique index as InternalError "UNIQUE constraint failed"."""
    return exc.code == 11000 or "UNIQUE constraint failed" in str(exc)


def _setup(coll) -> None:
    coll.create_index("email_key", unique=True, name="email_key_unique")
    for flag in OUTBOX_FLAGS:
        coll.create_index(flag, name=flag)


def _insert(coll, user: UserRecord) -> None:
    try:
        coll.insert_one(_to_mongo(user))
    except OperationFailure as exc:
        if _is_duplicate(exc):
            raise EmailTaken(user.email) from None
        raise


def _find_by(coll, field: str, value: str) -> UserRecord | None:
    doc = coll.find_one({"_id" if field == "id" else field: value})
    return None if doc is None else _from_mongo(doc)


def _update(coll, user: UserRecord) -> bool:
    doc = _to_mongo(user)
    for key in ("_id", *OUTBOX_FLAGS):
        doc.pop(key)
    doc["version"] = user.version + 1
    try:
        result = coll.update_one({"_id": user.id, "version": user.version}, {"$set": doc})
    except OperationFailure as exc:
        if _is_duplicate(exc):
            raise EmailTaken(user.email) from None
        raise
    return result.matched_count == 1


def _close(coll, user_id: str, once: Recorded | None) -> int | None:
    update: dict[str, Any] = {"$set": {"closed": True, "revoke_pending": True}, "$inc": {"version": 1}}
    if once is not None:   # the command's answer, in the same document update as its effect
        update["$push"] = {"inbox": msgspec.to_builtins(once)}
    # no projection: FerretDB 1.24 does not implement findAndModify's "fields"
    doc = coll.find_one_and_update({"_id": user_id}, update, return_document=pymongo.ReturnDocument.AFTER)
    return None if doc is None else doc["version"]


def _pending(coll, flag: str, limit: int) -> list[UserRecord]:
    return [_from_mongo(doc) for doc in coll.find({flag: True}).limit(limit)]


def _clear_pending(coll, flag: str, user_id: str) -> None:
    coll.update_one({"_id": user_id}, {"$set": {flag: False}})


MongoUserStore._ops = DriverOps(insert=_insert, find_by=_find_by, update=_update, close=_close,
                                pending=_pending, clear_pending=_clear_pending)
