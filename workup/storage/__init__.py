"""Wide-row tables on Cassandra (scylla-driver) or SQLite, for the jobs and contracts stores.

A store is written once against :class:`Db` and a list of :class:`Table` declarations; the two
adapters turn them into CQL or SQLite. Tables are modelled the Cassandra way (one table per query,
partition key + clustering columns), so every operation the port offers is one Cassandra access
path: no secondary index, no ``ALLOW FILTERING``. State changes that race are conditional
(:meth:`Db.insert_if_absent`, :meth:`Db.update_if`): lightweight transactions on Cassandra, a
single conditional statement on SQLite. The rows a command makes go together (:meth:`Db.create`:
a logged batch on Cassandra, one transaction on SQLite); index rows, which readers check against
the row they point at, go in one unlogged batch (:meth:`Db.upsert_bulk`, :meth:`Db.delete_many`).

Values are plain ``text`` / ``bigint`` / ``int`` / ``boolean``; the stores encode anything richer
(money as decimal text, lists as JSON) so both adapters hold the same bytes.
"""

from .cassandra import CassandraDb, keyspace_name
from .later import DeleteLater
from .open import open_db, opened_store
from .outbox import OUTBOX, OUTBOX_TABLES, Outbox
from .slots import claim_slot, slot_table
from .sqlite import SqliteDb
from .table import Db, Row, Table, located

__all__ = ["Table", "Db", "Row", "SqliteDb", "CassandraDb", "open_db", "opened_store", "keyspace_name",
           "OUTBOX", "OUTBOX_TABLES", "Outbox", "DeleteLater", "located", "claim_slot", "slot_table"]
