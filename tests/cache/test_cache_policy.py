"""Pure decisions of the versioned cache."""

import pytest

from workup.cache import accepts, cache_key, closed_account_key, pack, unpack
from workup.cache._policy import check_version


@pytest.mark.parametrize("stored, incoming, expected", [
    (None, 0, True), (None, 5, True),
    (3, 2, False), (3, 3, True), (3, 4, True),
    (0, 0, True), (10**30, 10**30 - 1, False), (10**30, 10**30 + 1, True),
])
def test_accepts(stored, incoming, expected):
    assert accepts(stored, incoming) is expected


@pytest.mark.parametrize("version, value", [
    (0, b""), (1, b'{"a":1}'), (123456789012345678901234, b"x:y!z"), (7, None), (0, None),
    (5, b"12:34"), (9, b"!"),
])
def test_pack_roundtrip(version, value):
    assert unpack(pack(version, value)) == (version, value)


def test_pack_format():
    assert pack(12, b"ab") == b"12:ab"
    assert pack(12, None) == b"12!"


@pytest.mark.parametrize("raw", [b"", b":abc", b"!", b"abc", b"12", b"1a:x", b"-1:x", b"1" * 41 + b":x"])
def test_unpack_refuses_foreign_values(raw):
    with pytest.raises(ValueError):
        unpack(raw)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None, 10**40])
def test_versions_are_non_negative_ints(bad):
    with pytest.raises(ValueError):
        check_version(bad)


def test_keys():
    assert cache_key("users", "me", "u1") == "workup:users:me:u1"
    assert closed_account_key("u1") == "workup:users:closed:u1"
    for service, entity in (("", "me"), ("users", ""), ("a:b", "me"), ("users", "x:y")):
        with pytest.raises(ValueError):
            cache_key(service, entity, "1")
