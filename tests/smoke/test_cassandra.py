"""Cassandra answers CQL through scylla-driver: keyspace, table, insert, select, drop."""

import uuid

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import RoundRobinPolicy


def test_keyspace_insert_select(cassandra_hosts: str) -> None:
    points = [hp.strip().rpartition(":") for hp in cassandra_hosts.split(",")]
    cluster = Cluster(
        [host for host, _, _ in points], port=int(points[0][2] or 9042), connect_timeout=10,
        execution_profiles={EXEC_PROFILE_DEFAULT: ExecutionProfile(load_balancing_policy=RoundRobinPolicy())},
    )
    keyspace = f"smoke_{uuid.uuid4().hex[:12]}"
    session = cluster.connect()
    try:
        session.execute(
            f"CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        )
        session.execute(f"CREATE TABLE {keyspace}.jobs (id uuid PRIMARY KEY, title text)")
        job = uuid.uuid4()
        session.execute(f"INSERT INTO {keyspace}.jobs (id, title) VALUES (%s, %s)", (job, "Write a parser"))
        row = session.execute(f"SELECT id, title FROM {keyspace}.jobs WHERE id = %s", (job,)).one()
        assert (row.id, row.title) == (job, "Write a parser")
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
        cluster.shutdown()
    assert keyspace not in cluster.metadata.keyspaces
