"""PostgreSQL answers: a query, and DDL/DML on a uniquely named table."""

import uuid

import psycopg


def test_select_and_temp_table(postgres_url: str) -> None:
    table = f"smoke_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, connect_timeout=5, autocommit=True) as conn:
        assert conn.execute("SELECT 1 + 1").fetchone() == (2,)
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, amount numeric(12, 2) NOT NULL)")
        try:
            conn.execute(f"INSERT INTO {table} VALUES (1, 10.25), (2, 0.75)")
            assert conn.execute(f"SELECT sum(amount)::text FROM {table}").fetchone() == ("11.00",)
        finally:
            conn.execute(f"DROP TABLE {table}")
        exists = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        assert exists == (None,)
