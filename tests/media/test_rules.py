"""Pure decisions: names, sniffing, credentials, validators, conditional requests and ranges."""

from __future__ import annotations

import base64
import re

import pytest

from workup.media._auth import basic_credentials, credentials_match
from workup.media._http import UNSATISFIABLE, byte_range, http_date, if_range_holds, is_not_modified, make_etag, parse_http_date
from workup.media._names import MAX_STEM, BadName, check_name, requested_name, stored_stem
from workup.media._sniff import EXTENSIONS, sniff, type_for_name

from .conftest import jpeg, pdf, png

# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "../x", "..", "a/b", "/abs", "a\\b", "\\\\host\\share", "a..b", "x\x00", "x\n", "x\x7f",
    "%2e%2e%2f", "%2E%2e/", "..%2F", "%5c", "%00", "%252e%252e%252f", "%25252f",
    "\uff0f", "\uff3c", "\u2024\u2024", "\ufe52\ufe52",
])
def test_traversal_names_are_refused_when_requested_and_neutralised_when_uploaded(name):
    with pytest.raises(BadName):
        check_name(name)
    with pytest.raises(BadName):
        requested_name(name)
    try:
        stem = stored_stem(name)
    except BadName:
        return  # nothing usable left: the upload is refused
    assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*", stem) and ".." not in stem, stem
    check_name(stem)


@pytest.mark.parametrize("given,stem", [
    ("photo", "photo"), ("Photo.JPG", "photo"), ("photo.jpeg", "photo"), ("cv.pdf", "cv"),
    ("my file name", "my_file_name"), ("Résumé", "resume"), ("naïve café", "naive_cafe"),
    ("a.b.c", "a.b.c"), ("archive.tar", "archive.tar"), (".bashrc", "bashrc"), ("--help", "help"),
    ("  x  ", "x"), ("x" * 500, "x" * MAX_STEM), ("a;b|c$d", "a_b_c_d"), ("UPPER_lower-9", "upper_lower-9"),
    ("%41bc", "41bc"), ("trailing.", "trailing"), ("../../Etc/Pass Wd", "etc_pass_wd"), ("a/../b", "a_b"),
    ("C:\\evil", "c_evil"), ("evil\x00.pdf", "evil"), ("\uff0e\uff0e\uff0fvictim", "victim"), ("a..b", "a_b"),
])
def test_stored_stem(given, stem):
    assert stored_stem(given) == stem


@pytest.mark.parametrize("given", ["", "   ", "日本語", ".", "-", "..", "...", "/", "%", "💥.png"])
def test_unusable_names(given):
    with pytest.raises(BadName):
        stored_stem(given)


def test_requested_names():
    assert requested_name("Logo.PNG") == "logo.png"
    assert requested_name("a_b-c.1.pdf") == "a_b-c.1.pdf"
    for bad in [".hidden", ".upload-1.part", "a b.png", "x" * 256, "é.png", ""]:
        with pytest.raises(BadName):
            requested_name(bad)


# --- sniffing ------------------------------------------------------------------------------------


def test_sniff_real_files():
    assert sniff(png()[:16]) == "image/png"
    assert sniff(jpeg()[:16]) == "image/jpeg"
    assert sniff(pdf()[:16]) == "application/pdf"
    assert sniff(b"GIF89a" + b"\0" * 10) == "image/gif"
    assert sniff(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert sniff(b"II*\0" + b"\0" * 12) == "image/tiff"
    assert sniff(b"BM" + b"\0" * 14) == "image/bmp"


@pytest.mark.parametrize("head", [b"", b"\x89PN", b"%PDF", b"<html>", b"PK\x03\x04", b"RIFF\0\0\0\0AVI ", b"BM"])
def test_sniff_unknown(head):
    assert sniff(head) is None


def test_extensions_round_trip():
    for mime, ext in EXTENSIONS.items():
        assert type_for_name(f"x.{ext}") == mime
    assert type_for_name("x.JPEG") == "image/jpeg"
    assert type_for_name("noext") is None and type_for_name("x.exe") is None


# --- credentials -------------------------------------------------------------------------------


def _basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


def test_basic_credentials_parsing():
    assert basic_credentials(_basic(b"user:pa:ss")) == ("user", "pa:ss")
    assert basic_credentials("basic " + base64.b64encode(b"u:").decode()) == ("u", "")
    assert basic_credentials(_basic("ü:ö".encode())) == ("ü", "ö")
    for bad in [None, "", "Basic", "Basic ", "Bearer x", "Basic %%%", _basic(b"nocolon"), _basic(b"\xff:\xfe")]:
        assert basic_credentials(bad) is None


def test_credentials_match():
    assert credentials_match(("u", "p"), "u", "p")
    assert not credentials_match(("u", "x"), "u", "p")
    assert not credentials_match(("x", "p"), "u", "p")
    assert not credentials_match(None, "u", "p")
    assert not credentials_match(("", ""), "u", "p")


# --- validators, conditionals, ranges ----------------------------------------------------------

MTIME = 1_700_000_000.7
ETAG = make_etag(100, 1_700_000_000_700_000_000, 42)


def test_etag_changes_with_any_part():
    assert ETAG.startswith('"') and ETAG.endswith('"')
    assert len({ETAG, make_etag(101, 1_700_000_000_700_000_000, 42), make_etag(100, 1, 42), make_etag(100, 1_700_000_000_700_000_000, 43)}) == 4


def test_http_dates():
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert parse_http_date(http_date(MTIME)) == int(MTIME)
    assert parse_http_date("garbage") is None and parse_http_date(None) is None and parse_http_date("") is None
    assert parse_http_date("Sun Nov  6 08:49:37 1994") is None  # no zone: not trusted


@pytest.mark.parametrize("inm,ims,expected", [
    (ETAG, None, True), (f"W/{ETAG}", None, True), (f'"a", {ETAG}', None, True), ("*", None, True),
    ('"other"', None, False), ('"other"', http_date(MTIME), False),  # If-None-Match wins
    (None, http_date(MTIME), True), (None, http_date(MTIME + 10), True), (None, http_date(MTIME - 10), False),
    (None, "nonsense", False), (None, None, False),
])
def test_is_not_modified(inm, ims, expected):
    assert is_not_modified(ETAG, MTIME, inm, ims) is expected


@pytest.mark.parametrize("if_range,expected", [
    (None, True), (ETAG, True), (f"W/{ETAG}", False), ('"other"', False),
    (http_date(MTIME), True), (http_date(MTIME - 5), False), ("nonsense", False),
])
def test_if_range(if_range, expected):
    assert if_range_holds(ETAG, MTIME, if_range) is expected


@pytest.mark.parametrize("header,expected", [
    (None, None),
    ("bytes=0-9", (0, 10)), ("bytes=5-", (5, 100)), ("bytes=-10", (90, 100)), ("bytes=-1000", (0, 100)),
    ("bytes=99-99", (99, 100)), ("bytes=10-5000", (10, 100)), ("BYTES = 1-2", (1, 3)),
    ("bytes=100-", UNSATISFIABLE), ("bytes=100-200", UNSATISFIABLE), ("bytes=-0", UNSATISFIABLE),
    ("bytes=5-1", None), ("bytes=0-1,3-4", None), ("items=0-1", None), ("bytes=a-b", None), ("bytes=-", None),
    ("bytes=\u00b2-", None), ("bytes", None), ("bytes=1", None),
])
def test_byte_range(header, expected):
    assert byte_range(header, 100) == expected


def test_byte_range_of_empty_file():
    assert byte_range("bytes=0-", 0) is UNSATISFIABLE
    assert byte_range("bytes=-5", 0) is UNSATISFIABLE
    assert byte_range(None, 0) is None
