"""The trio request path to Cassandra (``workup/storage/_cql.py``): frames split and joined by
the socket are parsed whole, answers reach the task that asked among many in flight, a request
given up leaves the others right, and a connection that fails is a 503 and is replaced."""

from __future__ import annotations

import secrets
import struct

import pytest
import trio

from workup.runtime.unavailable import unavailable
from workup.settings import Settings
from workup.storage import CassandraDb, Table, keyspace_name
from workup.storage._cql import HEADER, FrameBuffer

ITEMS = Table("items", {"id": "text", "n": "bigint", "note": "text"}, ("id",))


def _frame(stream: int, opcode: int, body: bytes, version: int = 0x84) -> bytes:
    return struct.pack(">BBhBi", version, 0, stream, opcode, len(body)) + body


def test_frames_are_parsed_whole_however_the_socket_cuts_them():
    wire = _frame(1, 8, b"a" * 10) + _frame(-1, 12, b"") + _frame(300, 8, b"x" * 70000)
    for cut in (1, 5, HEADER, HEADER + 3, 4096, len(wire)):
        frames, buf = [], FrameBuffer()
        for i in range(0, len(wire), cut):
            frames += list(buf.feed(wire[i:i + cut]))
        assert frames == [(1, 0, 8, b"a" * 10), (-1, 0, 12, b""), (300, 0, 8, b"x" * 70000)], cut


def test_a_stream_that_is_not_cql_v4_fails_the_connection():
    with pytest.raises(ConnectionError, match="not a CQL v4 response"):
        list(FrameBuffer().feed(_frame(1, 8, b"", version=0x85)))
    with pytest.raises(ConnectionError, match="not a CQL v4 response"):
        list(FrameBuffer().feed(b"HTTP/1.1 400 Bad Request\r\n"))


@pytest.fixture
async def db(cassandra_hosts):
    points = Settings(cassandra_hosts=cassandra_hosts).cassandra_contact_points()
    cdb = await CassandraDb.connect(points, keyspace_name(f"t{secrets.token_hex(5)}", "cql"), [ITEMS])
    try:
        yield cdb
    finally:
        await cdb.drop_keyspace()
        await cdb.aclose()


async def test_many_requests_in_flight_each_get_their_own_answer(db):
    await db.upsert_bulk([(ITEMS, {"id": f"i{i}", "n": i, "note": "n" * (i % 50)}) for i in range(300)])
    got: dict[int, list] = {}

    async def read(i: int) -> None:
        got[i] = await db.select(ITEMS, {"id": f"i{i}"})
    async with trio.open_nursery() as nursery:
        for i in range(300):
            nursery.start_soon(read, i)
    assert all(got[i] == [{"id": f"i{i}", "n": i, "note": "n" * (i % 50)}] for i in range(300))
    assert len(db._nodes._connections) == 1          # one connection to the one node


async def test_requests_given_up_leave_the_others_right(db):
    await db.upsert_bulk([(ITEMS, {"id": f"i{i}", "n": i, "note": ""}) for i in range(50)])
    assert await db.select(ITEMS, {"id": "i0"})
    (conn,) = db._nodes._connections.values()
    started = 0

    async def read(i: int) -> None:
        nonlocal started
        started += 1
        await db.select(ITEMS, {"id": f"i{i}"})
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:   # sent, then given up: answers come later
            for i in range(20):
                nursery.start_soon(read, i)
            # every task has sent its request (or is about to): their answers are still due
            # (how many a fast node has answered by the cancel is the machine's business)
            while started < 20:
                await trio.sleep(0)
            nursery.cancel_scope.cancel()
    # the premise: answers were still due when their requesters left (their ids stay reserved)
    assert any(w is None for w in conn._waiters.values())
    for i in range(50):                              # the late answers go to nobody else
        assert await db.select(ITEMS, {"id": f"i{i}"}) == [{"id": f"i{i}", "n": i, "note": ""}]


async def test_a_failed_connection_is_a_503_and_the_next_request_opens_another(db):
    await db.upsert(ITEMS, {"id": "a", "n": 1, "note": ""})
    assert await db.select(ITEMS, {"id": "a"})
    (conn,) = db._nodes._connections.values()
    failures: list[BaseException] = []

    async def read() -> None:
        try:
            await db.select(ITEMS, {"id": "a"})
        except Exception as exc:   # noqa: BLE001 - what a waiting request gets is the point
            failures.append(exc)
    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(read)
        await trio.sleep(0)                          # all ten sent, none answered yet
        conn._stream.socket.close()                  # the node's connection is lost
    assert failures and all(type(f).__name__ == "NoHostAvailable" for f in failures), failures
    assert all(unavailable(f) for f in failures)     # the caller answers 503, not 500
    assert await db.select(ITEMS, {"id": "a"}) == [{"id": "a", "n": 1, "note": ""}]
    assert next(iter(db._nodes._connections.values())) is not conn


async def test_a_node_that_cannot_be_reached_is_skipped_for_a_moment_not_waited_for():
    from cassandra.protocol import ProtocolHandler

    from workup.storage._cql import CqlNodes

    class Host:                                      # a port nothing listens on
        class endpoint:
            address, port = "127.0.0.1", 9

    nodes = CqlNodes(ProtocolHandler, lambda routed: iter([Host]), connect_timeout=5, retry_after=30)
    with pytest.raises(Exception) as first:
        await nodes.connection(None)
    assert type(first.value).__name__ == "NoHostAvailable" and unavailable(first.value)
    with trio.fail_after(0.5):                       # no second connect while the first is fresh
        with pytest.raises(Exception, match="a moment ago"):
            await nodes.connection(None)
