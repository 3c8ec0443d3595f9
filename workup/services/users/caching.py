"""Cached reads of the users service (versioned cache-aside, ``workup.cache``).

The gateway serves ``GET /me``, both own profiles and the public freelancer profile from the cache
(keys below); on a miss it forwards, and the handler fills the entry at the version it read. Every
committed write of a user invalidates all that user's entries at the new version, so an older
in-flight fill can no longer land (see ``workup/cache/_policy.py``).
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from ...cache import Cache, CacheUnavailable, cache_key
from ...transport.envelope import encode_json
from ...messages import users as m

__all__ = ["ENTITIES", "key", "fill", "invalidate", "TTL"]

log = logging.getLogger("workup.users")

# entity -> what it caches (all derived from the one user document)
ENTITIES = (m.CACHED_ME, m.CACHED_CLIENT_PROFILE, m.CACHED_FREELANCER_PROFILE, m.CACHED_FREELANCER_PUBLIC)
TTL = 300.0


def key(entity: str, user_id: str) -> str:
    """``workup:users:<entity>:<user id>``."""
    assert entity in ENTITIES, entity
    return cache_key("users", entity, user_id)


async def fill(cache: Cache, entity: str, user_id: str, version: int, body: Any) -> Any:
    """Store ``body`` (the reply) as read at ``version``; returns it. A cache outage only costs
    the next read a trip to the service."""
    try:
        await cache.set(key(entity, user_id), encode_json(body), version=version, ttl=TTL)
    except CacheUnavailable as exc:
        log.warning("cache fill %s skipped: %s", entity, exc)
    return body


async def invalidate(cache: Cache, user_id: str, version: int) -> None:
    """After committing ``version`` of the user (all entries at once). An outage here is logged;
    entries then live at most :data:`TTL` seconds."""

    async def one(entity: str) -> None:
        try:
            await cache.delete(key(entity, user_id), version=version)
        except CacheUnavailable as exc:
            log.error("cache invalidation of %s:%s failed: %s", entity, user_id, exc)

    async with trio.open_nursery() as nursery:
        for entity in ENTITIES:
            nursery.start_soon(one, entity)
