"""The stored user document and the pure functions that change it.

One document per account (client, freelancer or admin); list items are sub-documents with ids,
so every change is a read-modify-write of one document, committed with a compare-and-set on
``version`` (FerretDB has no transactions; one document is atomic everywhere).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from ...ids import new_id
from ...messages import users as m
from ...runtime.inbox import Recorded

__all__ = ["UserRecord", "ListFull", "MAX_ITEMS", "MAX_TAGS", "email_key", "apply_patch", "add_item", "update_item",
           "remove_item", "add_to_set", "remove_from_set", "ITEM_TYPES"]


class UserRecord(msgspec.Struct, kw_only=True):
    id: str
    email: str                      # as given at registration or last change
    email_key: str                  # lower-cased, unique across roles
    password_hash: str
    role: m.UserType
    name: str                       # clientName / fullName ("Administrator" for the admin)
    created_at: str
    version: int = 0                # bumped by every save (compare-and-set)
    closed: bool = False            # the account was deleted: no login, no token, email kept
    wallet_pending: bool = False    # outbox flag: payments has not acknowledged CreateWallet yet
    revoke_pending: bool = False    # outbox flag: the cache's closed-account flag is not written yet
    city: str | None = None
    description: str | None = None
    industry: str | None = None
    employee_count: int | None = None
    job_title: str | None = None
    birth_date: dt.date | None = None
    photo_link: str | None = None
    resume_link: str | None = None
    skills: list[str] = []
    languages: list[str] = []
    achievements: list[m.Achievement] = []
    education: list[m.Education] = []
    experience: list[m.Experience] = []
    # first answers of the account's ``once`` commands (runtime/inbox.py), saved with their effect
    inbox: list[Recorded] = []


# Bounds that keep one user document far below MongoDB's 16 MiB document limit.
MAX_ITEMS = 100   # per list (achievements, education, experience)
MAX_TAGS = 100    # per set (skills, languages)


class ListFull(Exception):
    """The list or set already holds its maximum number of entries."""


ITEM_TYPES: dict[str, type[msgspec.Struct]] = {
    "achievements": m.Achievement, "education": m.Education, "experience": m.Experience,
}


def email_key(email: str) -> str:
    return email.strip().lower()


def _given(patch: msgspec.Struct) -> dict[str, Any]:
    """The fields of a partial-update struct that were present in the request."""
    return {f: v for f in patch.__struct_fields__ if (v := getattr(patch, f)) is not msgspec.UNSET}


# profile field of the request -> attribute of the record
_PROFILE_FIELDS = {"full_name": "name", "name": "name"}


def apply_patch(user: UserRecord, patch: msgspec.Struct) -> UserRecord:
    """A copy of ``user`` with the given profile fields of ``patch`` applied (email re-keyed)."""
    changes = {_PROFILE_FIELDS.get(f, f): v for f, v in _given(patch).items()}
    if "email" in changes:
        changes["email_key"] = email_key(changes["email"])
    return msgspec.structs.replace(user, **changes)


def add_item(user: UserRecord, kind: str, request: msgspec.Struct,
             item_id: str | None = None) -> tuple[UserRecord | None, msgspec.Struct]:
    """Append a new item; when ``item_id`` is already in the list (a redelivered add), nothing
    changes (``None``) and the existing item is the answer."""
    items = getattr(user, kind)
    for existing in items:
        if item_id is not None and existing.id == item_id:
            return None, existing
    if len(items) >= MAX_ITEMS:
        raise ListFull(f"at most {MAX_ITEMS} {kind} entries")
    item = ITEM_TYPES[kind](id=item_id or new_id(), **msgspec.structs.asdict(request))
    return msgspec.structs.replace(user, **{kind: [*items, item]}), item


def update_item(user: UserRecord, kind: str, request: msgspec.Struct) -> tuple[UserRecord, msgspec.Struct] | None:
    """``None`` when the item is not in the user's list."""
    fields = _given(request)
    item_id = fields.pop("id")
    items = list(getattr(user, kind))
    for i, item in enumerate(items):
        if item.id == item_id:
            items[i] = msgspec.structs.replace(item, **fields)
            return msgspec.structs.replace(user, **{kind: items}), items[i]
    return None


def remove_item(user: UserRecord, kind: str, item_id: str) -> UserRecord | None:
    items = getattr(user, kind)
    kept = [item for item in items if item.id != item_id]
    return None if len(kept) == len(items) else msgspec.structs.replace(user, **{kind: kept})


def add_to_set(user: UserRecord, kind: str, value: str) -> UserRecord | None:
    """``None`` when already present (nothing to save)."""
    values = getattr(user, kind)
    if value in values:
        return None
    if len(values) >= MAX_TAGS:
        raise ListFull(f"at most {MAX_TAGS} {kind}")
    return msgspec.structs.replace(user, **{kind: [*values, value]})


def remove_from_set(user: UserRecord, kind: str, value: str) -> UserRecord | None:
    values = getattr(user, kind)
    return None if value not in values else msgspec.structs.replace(user, **{kind: [v for v in values if v != value]})
