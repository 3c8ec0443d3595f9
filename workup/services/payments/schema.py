"""The payments schema, written once for both stores, and its idempotent migrator.

Placeholders are filled per dialect: ``{money}`` is ``NUMERIC(14,2)`` on PostgreSQL and integer
cents on SQLite (both exact), ``{ts}`` a timestamp, ``{serial}`` an auto-increment primary key used
for "newest first" ordering, ``{blob}`` bytes. ``version`` columns count the writes of a row: the
versioned read cache (``workup.cache``) orders fills and invalidations by them. Migrations only ever get appended.
"""

from __future__ import annotations

from typing import Iterable, Sequence

__all__ = ["MIGRATIONS", "migration_statements", "pending"]

_V1 = """
CREATE TABLE wallets (
    user_id     TEXT PRIMARY KEY,
    role        TEXT,
    balance     {money} NOT NULL DEFAULT 0 CHECK (balance >= 0),
    version     INTEGER NOT NULL DEFAULT 0,
    created_at  {ts} NOT NULL,
    updated_at  {ts} NOT NULL
);
CREATE TABLE payment_requests (
    seq            {serial},
    id             TEXT NOT NULL UNIQUE,
    client_id      TEXT NOT NULL,
    freelancer_id  TEXT NOT NULL,
    contract_id    TEXT NOT NULL,
    milestone_id   TEXT NOT NULL UNIQUE,
    amount         {money} NOT NULL CHECK (amount > 0),
    status         TEXT NOT NULL CHECK (status IN ('PENDING', 'PAID', 'CANCELLED')),
    version        INTEGER NOT NULL DEFAULT 0,
    created_at     {ts} NOT NULL,
    updated_at     {ts} NOT NULL
);
CREATE INDEX payment_requests_client ON payment_requests (client_id, seq);
CREATE INDEX payment_requests_freelancer ON payment_requests (freelancer_id, seq);
CREATE INDEX payment_requests_contract ON payment_requests (contract_id);
CREATE TABLE payment_transactions (
    seq                 {serial},
    id                  TEXT NOT NULL UNIQUE,
    payment_request_id  TEXT NOT NULL UNIQUE REFERENCES payment_requests (id),
    amount              {money} NOT NULL CHECK (amount > 0),
    status              TEXT NOT NULL,
    created_at          {ts} NOT NULL
);
CREATE TABLE wallet_transactions (
    seq                     {serial},
    id                      TEXT NOT NULL UNIQUE,
    user_id                 TEXT NOT NULL REFERENCES wallets (user_id),
    amount                  {money} NOT NULL CHECK (amount > 0),
    transaction_type        TEXT NOT NULL CHECK (transaction_type IN ('CREDIT', 'DEBIT')),
    description             TEXT,
    payment_transaction_id  TEXT REFERENCES payment_transactions (id),
    created_at              {ts} NOT NULL
);
CREATE INDEX wallet_transactions_user ON wallet_transactions (user_id, seq);
CREATE TABLE idempotency_keys (
    user_id     TEXT NOT NULL,
    route       TEXT NOT NULL,
    key         TEXT NOT NULL,
    status      INTEGER NOT NULL,
    body        {blob} NOT NULL,
    created_at  {ts} NOT NULL,
    PRIMARY KEY (user_id, route, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
CREATE TABLE outbox (
    seq              {serial},
    kind             TEXT NOT NULL CHECK (kind IN ('call', 'event')),
    name             TEXT NOT NULL,
    payload          {blob} NOT NULL,
    status           TEXT NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'DEAD')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  {ts} NOT NULL,
    last_error       TEXT,
    created_at       {ts} NOT NULL
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at)
"""

# A closed account's wallet: no deposit, withdrawal or payment touches it again. Closing checks
# the balance is zero in the same transaction that sets this, under the row lock.
_V2 = """
ALTER TABLE wallets ADD COLUMN closed_at {ts}
"""

# (version, template); append only.
MIGRATIONS: list[tuple[int, str]] = [(1, _V1), (2, _V2)]


def migration_statements(template: str, types: dict[str, str]) -> list[str]:
    """The migration's statements with the dialect's column types filled in."""
    return [s.strip() for s in template.format(**types).split(";") if s.strip()]


def pending(applied: Iterable[int], migrations: Sequence[tuple[int, str]] = MIGRATIONS) -> list[tuple[int, str]]:
    """Migrations not applied yet, in order (a pure decision, unit-tested)."""
    done = set(applied)
    return [m for m in sorted(migrations) if m[0] not in done]


