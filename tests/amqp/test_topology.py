"""The topology record replayed after a reconnect (pure bookkeeping)."""

from workup.amqp._core._topology import Topology


def test_steps_in_dependency_order_and_removals() -> None:
    t = Topology()
    t.add_exchange("ex", type="topic")
    t.add_exchange("amq.topic", type="topic")  # predeclared: never re-declared
    t.add_exchange("", type="direct")  # the default exchange neither
    t.add_queue("q", "q", durable=True)
    t.add_binding("q", "ex", "a.*")
    t.add_binding("q", "ex", "b.*")
    assert [s[1] for s in t.steps("exchange")] == ["ex"]
    assert t.steps("queue") == [("queue", "q", {"queue": "q", "durable": True})]
    assert [s[1] for s in t.steps("bind")] == [("q", "ex", "a.*"), ("q", "ex", "b.*")]
    t.remove_binding("q", "ex", "a.*")
    assert [s[1] for s in t.steps("bind")] == [("q", "ex", "b.*")]
    t.remove_exchange("ex")  # its bindings go with it
    assert t.steps("bind") == [] and t.steps("exchange") == []
    t.add_binding("q", "amq.topic", "x")
    t.remove_queue("q")
    assert t.steps("queue") == [] and t.steps("bind") == []


def test_server_named_queue_is_renamed_with_its_bindings() -> None:
    t = Topology()
    t.add_queue("amq.gen-1", "", exclusive=True)
    t.add_binding("amq.gen-1", "ex", "k")
    [(_, name, kw)] = t.steps("queue")
    assert name == "amq.gen-1" and kw["queue"] == ""  # declared again without a name
    t.rename_queue("amq.gen-1", "amq.gen-2")
    assert [s[1] for s in t.steps("queue")] == ["amq.gen-2"]
    assert [s[1] for s in t.steps("bind")] == [("amq.gen-2", "ex", "k")]
    t.rename_queue("unknown", "x")  # no effect
    assert [s[1] for s in t.steps("queue")] == ["amq.gen-2"]
