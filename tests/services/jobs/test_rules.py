"""Pure decisions of the jobs and contracts services: words, paging state, state machines, access."""

from __future__ import annotations

import itertools

import pytest

from workup.transport.envelope import Caller
from workup.services.contracts import rules as c
from workup.services.jobs.rules import can_read_proposal, visible_proposals
from workup.services.jobs.search import (ALL, BadPagingState, decode_state, encode_state, job_terms,
    query_terms, words)

MILESTONE = ["OPEN", "IN_PROGRESS", "IN_REVIEW", "ACCEPTED", "PAID"]


def test_words_are_whole_and_case_insensitive():
    assert words("C++ and Node.js, STRASSE_x café") == ["c", "and", "node", "js", "strasse", "x", "café"]
    assert job_terms("Rust Dev", "rust, parsers!", ["Tree-sitter"]) == {ALL, "rust", "dev", "parsers", "tree", "sitter"}
    assert query_terms("  parsers RUST rust ") == ["parsers", "rust"]   # distinct, longest first
    assert query_terms("!!! ...") == []


def test_paging_state_round_trip_and_garbage():
    state = encode_state(1732780800123, "ab" * 16)
    assert decode_state(state) == (1732780800123, "ab" * 16)
    for bad in ("", "garbage!", encode_state(1, "x" * 32), "djE6MTI6", "v1:12:" + "a" * 32):
        with pytest.raises(BadPagingState):
            decode_state(bad)


def test_milestone_progress_and_evaluation_tables():
    assert {s: c.progressed(s) for s in MILESTONE} == {
        "OPEN": "IN_PROGRESS", "IN_PROGRESS": "IN_REVIEW", "IN_REVIEW": None, "ACCEPTED": None, "PAID": None}
    for status, target in itertools.product(MILESTONE, MILESTONE):
        expected = target if status == "IN_REVIEW" and target in ("ACCEPTED", "IN_PROGRESS") else None
        assert c.evaluated(status, target) == expected, (status, target)
    assert [s for s in MILESTONE if c.payable(s)] == ["ACCEPTED", "PAID"]
    assert c.completes(["PAID", "PAID"]) and not c.completes(["PAID", "ACCEPTED"]) and not c.completes([])


def test_termination_handling_table():
    for status, chosen in itertools.product(["PENDING", "ACCEPTED", "REJECTED"], ["PENDING", "ACCEPTED", "REJECTED"]):
        expected = chosen if status == "PENDING" and chosen != "PENDING" else None
        assert c.handled(status, chosen) == expected


def test_access_rules():
    client, freelancer = "c1", "f1"
    assert c.is_party(Caller("c1", "CLIENT"), client, freelancer)
    assert c.is_party(Caller("f1", "FREELANCER"), client, freelancer)
    assert not c.is_party(Caller("c1", "FREELANCER"), client, freelancer)   # id with the other role
    assert not c.is_party(Caller("x", "CLIENT"), client, freelancer)
    assert c.can_read(Caller("a", "ADMIN"), client, freelancer) and not c.is_party(Caller("a", "ADMIN"), client, freelancer)
    assert not c.can_read(Caller(None, None), client, freelancer)
    props = [("p1", "f1"), ("p2", "f2")]
    author = lambda p: p[1]  # noqa: E731
    assert visible_proposals(Caller("o", "CLIENT"), "o", props, author) == props
    assert visible_proposals(Caller("a", "ADMIN"), "o", props, author) == props
    assert visible_proposals(Caller("f2", "FREELANCER"), "o", props, author) == [("p2", "f2")]
    assert visible_proposals(Caller("x", "CLIENT"), "o", props, author) is None
    assert can_read_proposal(Caller("f1", "FREELANCER"), "f1", "o") and can_read_proposal(Caller("o", "CLIENT"), "f1", "o")
    assert not can_read_proposal(Caller("f2", "FREELANCER"), "f1", "o")
