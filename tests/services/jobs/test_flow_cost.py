"""The counting rules of ``tests/services/jobs/flow_cost.py`` (the issue 15 table)."""

from collections import Counter

from tests.services.jobs.flow_cost import COLUMNS, by_table, census, kind_of, markdown


def test_statements_are_counted_by_kind():
    assert kind_of("SELECT * FROM ks.jobs WHERE id = ?") == "cql read"
    assert kind_of("SELECT * FROM ks.outbox WHERE kind = ? LIMIT 100") == "relay scan"
    assert kind_of("SELECT * FROM ks.outbox_intents WHERE kind = ? AND bucket = ? LIMIT 100") == "relay scan"
    assert kind_of("SELECT * FROM ks.outbox_buckets WHERE kind = ?") == "relay scan"
    assert kind_of("SELECT * FROM ks.outboxes WHERE kind = ?") == "cql read"
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


def test_by_table_names_the_table_of_each_statement():
    assert by_table("UPDATE ks.jobs SET a = ? WHERE id = ? IF b = ?") == "LWT jobs"
    assert by_table("INSERT INTO ks.proposal_slots (a) VALUES (?) IF NOT EXISTS") == "LWT proposal_slots"
    assert by_table("UPDATE ks.milestones_by_contract SET status = ? WHERE contract_id = ?") == "write milestones_by_contract"
    assert by_table("SELECT * FROM ks.outbox WHERE kind = ?") == "relay scan outbox"
    lines = census({"accept": Counter({"LWT jobs": 1, "write jobs": 1, "rpc": 2}),
                    "post job": Counter({"LWT jobs": 1})}).splitlines()
    assert lines == ["- post job: LWT jobs 1", "- accept: LWT jobs 1, write jobs 1",
                     "- **flow**: LWT jobs 2, write jobs 1", "- lightweight transactions per flow: 2"]
