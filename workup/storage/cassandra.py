"""The Cassandra adapter of :class:`~.table.Db`: scylla-driver for the cluster (its metadata,
host states, preparing, schema statements), statements sent on trio sockets (:mod:`._cql`)."""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import trio

from ._cql import CqlNodes, batch_queries
from .table import Row, Table, _in_keys, _insert_sql, _qualified, _select_sql, _where, create_batches

__all__ = ["CassandraDb", "keyspace_name"]

# upsert_bulk's unlogged batches: rows of one partition are one mutation however many (and a
# single-partition batch is exempt from the batch size thresholds, CASSANDRA-10876); rows of
# different partitions are fanned out by the coordinator, kept small
_BULK_ONE, _BULK = 1000, 100
_BATCH_BYTES = 40 * 1024   # below Cassandra's batch_size_fail_threshold (50 KiB by default)
_IN = 100     # keys per statement of select_in: a coordinator fans out a partition-key IN itself
# The driver's default (1 s doubling to 10 min) tried a node back from a 15 s outage only ~30 s
# later, a minute for a longer one: every jobs/contracts request answered 503 meanwhile. 0.5 s
# doubling to 1 s finds it within a second in every worker process (with 4 s, one process of a
# service could answer 503 for seconds after its sibling was back), and keeps trying as long as
# it is away (no max_attempts): one connection attempt a second per process is nothing.
_RECONNECT_S = (0.5, 1.0)
_CONNECT_TIMEOUT_S = 10.0
_FETCH_SIZE = 5000          # rows per page (the driver's default)


class CassandraDb:
    """A keyspace on a Cassandra cluster, for trio. The driver's ``Cluster`` and ``Session``
    know the cluster and prepare statements (once each, on every node); the statements
    themselves go out on trio connections of our own (:class:`._cql.CqlNodes`, one per node,
    the node chosen by the driver's token-aware policy), so no thread is involved per query;
    a limiter bounds the queries in flight. Connecting, preparing and shutting down block, so
    they run in a worker thread."""

    def __init__(self, cluster: Any, session: Any, keyspace: str, in_flight: int, profile: Any) -> None:
        from cassandra import protocol
        from cassandra.query import BatchType
        self._proto = protocol      # its message classes, looked up once (not an import per statement)
        # what the session's statements are sent with, ours too: one place says it (connect)
        self._consistency = profile.consistency_level, profile.serial_consistency_level
        self._timeout = float(profile.request_timeout)
        self._batch_types = BatchType.LOGGED, BatchType.UNLOGGED
        self._cluster = cluster
        self._session = session
        self.keyspace = keyspace
        self.fetch_size = _FETCH_SIZE
        self._prepared: dict[str, Any] = {}
        self._tables: dict[str, Table] = {}
        self._limiter = trio.CapacityLimiter(in_flight)
        metadata = cluster.metadata
        policy = profile.load_balancing_policy

        def plan(routed: Any) -> Iterator[Any]:
            hosts = metadata.all_hosts()
            # one node: every statement's token-aware plan is that node (the policy costs ~30 µs)
            return iter(hosts) if len(hosts) == 1 else policy.make_query_plan(keyspace, routed)
        # a node whose connect failed is tried again as soon as the driver's own reconnection would
        self._nodes = CqlNodes(protocol.ProtocolHandler, plan, connect_timeout=_CONNECT_TIMEOUT_S,
                               retry_after=_RECONNECT_S[0])

    def _t(self, table: Table) -> Table:
        """The table under its keyspace-qualified name (no ``USE``: prepared statements are
        unambiguous that way)."""
        q = self._tables.get(table.name)
        if q is None:
            q = self._tables[table.name] = _qualified(table, self.keyspace)
        return q

    @classmethod
    async def connect(cls, contact_points: list[tuple[str, int]], keyspace: str,
                      tables: Sequence[Table], *, replication: int = 1, in_flight: int = 128) -> "CassandraDb":
        def setup() -> CassandraDb:
            from cassandra import AlreadyExists, ConsistencyLevel, InvalidRequest
            from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
            from cassandra.policies import DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy, TokenAwarePolicy
            from cassandra.query import dict_factory

            profile = ExecutionProfile(
                load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
                consistency_level=ConsistencyLevel.LOCAL_QUORUM,
                serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL,
                row_factory=dict_factory, request_timeout=15,
            )
            port = contact_points[0][1]
            # protocol v4 without compression: v5 frames every message in segments whose
            # checksums and LZ4 the driver computes in Python, on both ends of a LAN hop
            cluster = Cluster([h for h, _ in contact_points], port=port, protocol_version=4, compression=False,
                              execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                              connect_timeout=10, reconnection_policy=ExponentialReconnectionPolicy(*_RECONNECT_S))
            try:
                session = cluster.connect()
                session.execute(
                    f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
                    f"{{'class': 'SimpleStrategy', 'replication_factor': {int(replication)}}}")
                # the driver learns of another process's schema changes late (events are batched
                # over seconds), so the keyspace it made a moment ago may be missing here: ask
                cluster.refresh_keyspace_metadata(keyspace)
                existing = set(cluster.metadata.keyspaces[keyspace].tables)
                # missing tables only, all at once (the driver waits for schema agreement after each)
                pending = [session.execute_async(_qualified(t, keyspace).cql(), timeout=60)
                           for t in tables if t.name not in existing]
                for future in pending:
                    try:
                        future.result()
                    except AlreadyExists:     # another process made it meanwhile
                        pass
                # tables made before an option changed get it now (only when it differs: every
                # ALTER is a schema change the whole cluster must agree on)
                for t in tables:
                    meta = cluster.metadata.keyspaces[keyspace].tables.get(t.name) if t.name in existing else None
                    for column in t.added(meta.columns) if meta is not None else ():   # an older release's table
                        try:
                            session.execute(f"ALTER TABLE {keyspace}.{t.name} ADD {column} {t.columns[column]}",
                                            timeout=60)
                        except InvalidRequest:   # another process added it meanwhile?
                            cluster.refresh_table_metadata(keyspace, t.name)
                            if column not in cluster.metadata.keyspaces[keyspace].tables[t.name].columns:
                                raise
                    if (meta is not None and t.gc_grace_seconds is not None
                            and int(meta.options.get("gc_grace_seconds", -1)) != t.gc_grace_seconds):
                        session.execute(f"ALTER TABLE {keyspace}.{t.name} WITH gc_grace_seconds = "
                                        f"{int(t.gc_grace_seconds)}", timeout=60)
            except BaseException:
                cluster.shutdown()
                raise
            return cls(cluster, session, keyspace, in_flight, profile)

        return await trio.to_thread.run_sync(setup)

    async def _stmt(self, cql: str) -> Any:
        stmt = self._prepared.get(cql)
        if stmt is None:
            stmt = await trio.to_thread.run_sync(self._session.prepare, cql)
            self._prepared[cql] = stmt
        return stmt

    async def _exec(self, cql: str, params: Sequence[Any]) -> list[Row]:
        """All rows of one statement (every page)."""
        return await self._send(await self._stmt(cql), list(params))

    async def _send(self, stmt: Any, params: list[Any]) -> list[Row]:
        """All rows of a prepared statement (every page), through the trio request path."""
        bound = stmt.bind(params)
        rows: list[Row] = []
        paging: bytes | None = None
        async with self._limiter:
            while True:
                message = self._proto.ExecuteMessage(stmt.query_id, bound.values, *self._consistency,
                                                     self.fetch_size, paging, self._cluster.timestamp_generator())
                result = await self._ask(bound, message, stmt.result_metadata, stmt.query_string)
                if result.parsed_rows:
                    names = result.column_names
                    rows.extend(dict(zip(names, row)) for row in result.parsed_rows)
                paging = result.paging_state
                if not paging:
                    return rows

    async def _ask(self, routed: Any, message: Any, result_metadata: Any, what: str) -> Any:
        """The answer to one request (``what``: its CQL, for errors and the tests' counters);
        the driver's exception for an error answer, ``OperationTimedOut`` after the request
        timeout, ``NoHostAvailable`` when no node can be reached. A node that no longer knows
        a prepared statement (it restarted) gets it prepared again and the request once more."""
        conn = await self._nodes.connection(routed)
        for attempt in (1, 2):
            try:
                with trio.move_on_after(self._timeout) as scope:
                    answer = await conn.request(message, result_metadata)
            except ConnectionError as exc:
                from cassandra.cluster import NoHostAvailable
                raise NoHostAvailable(f"Cassandra at {conn.address} failed during a request", {conn.address: exc}) from exc
            if scope.cancelled_caught:
                from cassandra import OperationTimedOut
                raise OperationTimedOut({conn.address: f"no answer within {self._timeout} s"}, conn.address)
            if not isinstance(answer, self._proto.ErrorMessage):
                return answer
            if isinstance(answer, self._proto.PreparedQueryNotFound) and attempt == 1:
                await self._prepare_again(conn, answer.info)
                continue
            raise answer.to_exception()
        raise AssertionError("unreachable")

    async def _prepare_again(self, conn: Any, query_id: bytes) -> None:
        for stmt in self._prepared.values():
            if stmt.query_id == query_id:
                answer = await conn.request(self._proto.PrepareMessage(stmt.query_string), None)
                if isinstance(answer, self._proto.ErrorMessage):
                    raise answer.to_exception()
                return

    async def _applied(self, cql: str, params: Sequence[Any]) -> bool:
        rows = await self._exec(cql, params)
        return bool(rows and rows[0].get("[applied]"))

    async def _each(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[list[Row]]:
        results: list[list[Row]] = [[] for _ in statements]

        async def one(i: int, cql: str, params: Sequence[Any]) -> None:
            results[i] = await self._exec(cql, params)
        async with trio.open_nursery() as nursery:
            for i, (cql, params) in enumerate(statements):
                nursery.start_soon(one, i, cql, params)
        return results

    async def insert_if_absent(self, table: Table, row: Row) -> bool:
        return await self._applied(_insert_sql(self._t(table), row) + " IF NOT EXISTS", list(row.values()))

    async def upsert(self, table: Table, row: Row) -> None:
        await self._exec(_insert_sql(self._t(table), row), list(row.values()))

    async def _batch(self, statements: Sequence[tuple[str, list[Any]]], logged: bool = True,
                     at_us: int | None = None) -> None:
        """One batch of prepared statements: logged (all or none) unless ``logged`` is false;
        written at ``at_us`` (µs since the epoch) when given, else now."""
        bound = [(await self._stmt(cql)).bind(params) for cql, params in statements]
        message = self._proto.BatchMessage(self._batch_types[0 if logged else 1], batch_queries(bound),
                                           *self._consistency,
                                           self._cluster.timestamp_generator() if at_us is None else at_us)
        async with self._limiter:
            await self._ask(bound[0], message, None, "BATCH " + "; ".join(b.prepared_statement.query_string for b in bound))

    def _inserts(self, writes: Sequence[tuple[Table, Row]]) -> list[tuple[str, list[Any]]]:
        return [(_insert_sql(self._t(t), r), list(r.values())) for t, r in writes]

    async def create(self, writes: Sequence[tuple[Table, Row]], made_ms: int) -> None:
        for chunk in create_batches(writes, _BATCH_BYTES):
            await self._batch(self._inserts(chunk), at_us=made_ms * 1000)

    async def upsert_bulk(self, writes: Sequence[tuple[Table, Row]]) -> None:
        # rows of one partition go in one unlogged batch (one mutation for the replica); rows
        # alone in their partition are chunked together (the coordinator fans them out)
        partitions: dict[tuple[Any, ...], list[tuple[str, list[Any]]]] = {}
        for table, row in writes:
            key = (table.name, *(row[c] for c in table.partition))
            partitions.setdefault(key, []).append((_insert_sql(self._t(table), row), list(row.values())))
        shared = [rows for rows in partitions.values() if len(rows) > 1]
        single = [rows[0] for rows in partitions.values() if len(rows) == 1]
        chunks = [rows[i:i + _BULK_ONE] for rows in shared for i in range(0, len(rows), _BULK_ONE)]
        chunks += [single[i:i + _BULK] for i in range(0, len(single), _BULK)]
        async with trio.open_nursery() as nursery:
            for chunk in chunks:
                nursery.start_soon(self._batch, chunk, False)

    async def delete_many(self, table: Table, keys: Sequence[Row]) -> None:
        if keys:
            clause, _ = _where(table, keys[0], None)
            cql = f"DELETE FROM {self._t(table).name} WHERE {clause}"
            await self._batch([(cql, list(k.values())) for k in keys], logged=False)

    def _update_cql(self, table: Table, key: Row, changes: Row) -> str:
        sets = ", ".join(f"{c} = ?" for c in changes)
        return f"UPDATE {self._t(table).name} SET {sets} WHERE {' AND '.join(f'{c} = ?' for c in key)}"

    async def update_if(self, table: Table, key: Row, changes: Row, expect: Row) -> bool:
        cond = " AND ".join(f"{c} = ?" for c in expect) if expect else "EXISTS"
        return await self._applied(f"{self._update_cql(table, key, changes)} IF {cond}",
                                   [*changes.values(), *key.values(), *expect.values()])

    async def update(self, table: Table, key: Row, changes: Row) -> None:
        await self._exec(self._update_cql(table, key, changes), [*changes.values(), *key.values()])

    async def update_if_then(self, table: Table, key: Row, changes: Row, expect: Row,
                             then: tuple[Table, Row]) -> bool:
        # no batch: a conditional batch cannot span tables; the LWT decides, the row follows
        if not await self.update_if(table, key, changes, expect):
            return False
        await self.upsert(*then)
        return True

    async def delete(self, table: Table, key: Row) -> None:
        clause, params = _where(table, key, None)
        await self._exec(f"DELETE FROM {self._t(table).name} WHERE {clause}", params)

    async def select(self, table: Table, where: Row, *, after: Sequence[Any] | None = None,
                     limit: int | None = None) -> list[Row]:
        return await self._exec(*_select_sql(self._t(table), where, after, limit))

    async def select_each(self, table: Table, wheres: Sequence[Row]) -> list[list[Row]]:
        return await self._each([_select_sql(self._t(table), w, None, None) for w in wheres])

    async def select_in(self, table: Table, where: Row, keys: Sequence[Row]) -> list[Row]:
        columns, values = _in_keys(keys)
        lhs = columns[0] if len(columns) == 1 else f"({', '.join(columns)})"
        cql = f"SELECT * FROM {self._t(table).name} WHERE {' AND '.join([*(f'{c} = ?' for c in where), f'{lhs} IN ?'])}"
        bound = [v[0] for v in values] if len(columns) == 1 else values   # list<tuple<...>> for (a, b) IN ?
        found = await self._each([(cql, [*where.values(), bound[i:i + _IN]]) for i in range(0, len(bound), _IN)])
        return [row for rows in found for row in rows]

    async def drop_keyspace(self) -> None:
        await trio.to_thread.run_sync(
            lambda: self._session.execute(f"DROP KEYSPACE IF EXISTS {self.keyspace}", timeout=60))

    async def aclose(self) -> None:
        await self._nodes.aclose()
        await trio.to_thread.run_sync(self._cluster.shutdown)


def keyspace_name(prefix: str, service: str) -> str:
    """``workup`` + ``jobs`` → ``workup_jobs`` (Cassandra identifiers: letters, digits, _)."""
    name = f"{prefix}_{service}".lower()
    if not name.replace("_", "").isalnum() or not name[0].isalpha() or len(name) > 48:
        raise ValueError(f"bad Cassandra keyspace name {name!r}")
    return name
