"""The counting rules of ``tests/services/jobs/flow_cost.py`` (the issue 15 table)."""

from collections import Counter

from tests.services.jobs.flow_cost import COLUMNS, kind_of, markdown


def test_statements_are_counted_by_kind():
    assert kind_of("SELECT * FROM ks.jobs WHERE id = ?") == "cql read"
    assert kind_of("SELECT * FROM ks.outbox WHERE kind = ? LIMIT 100") == "relay scan"
    assert kind_of("INSERT INTO ks.jobs (id) VALUES (?)") == "cql write"
    assert kind_of("DELETE FROM ks.outbox WHERE kind = ? AND item = ?") == "cql write"
    assert kind_of("INSERT INTO ks.jobs (id) VALUES (?) IF NOT EXISTS") == "cql LWT"
    assert kind_of("UPDATE ks.jobs SET a = ? WHERE id = ? IF b = ?") == "cql LWT"
    assert kind_of("BEGIN BATCH INSERT INTO ks.t (a) VALUES (?); APPLY BATCH") == "cql batch"


def test_table_sums_steps_in_story_order():
    table = {"propose": Counter({"rpc": 1, "cql LWT": 2}), "post job": Counter({"rpc": 1})}
    lines = markdown(table, Counter({"relay scan": 5})).splitlines()
    assert lines[0] == "| step | " + " | ".join(COLUMNS) + " |"
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| post job", "| propose", "| **flow**",
                                                           "| idle, per second"]
    assert lines[4].startswith("| **flow** | **2** | **0** | **0** | **0** | **0** | **2** |")
    assert "| 5.0 |" in lines[5]
