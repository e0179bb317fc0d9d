"""Response serialization: status lines, header validation, chunks, the Date cache."""

from __future__ import annotations

import email.utils

import pytest

from treadle.http.writer import (
    HAS_DATE,
    LAST_CHUNK,
    WANTS_CLOSE,
    DateCache,
    block_cache,
    encode_block,
    encode_chunk,
    encode_fields,
    status_line,
)


def test_status_lines() -> None:
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert status_line(404) == b"HTTP/1.1 404 Not Found\r\n"
    assert status_line(599) == b"HTTP/1.1 599 \r\n"
    assert status_line(200, "Fine") == b"HTTP/1.1 200 Fine\r\n"
    for bad in (99, 1000, "200"):
        with pytest.raises(ValueError, match="status"):
            status_line(bad)  # type: ignore[arg-type]


def test_no_splitting_through_the_reason_phrase_cve_2026_34519() -> None:
    for reason in ("OK\r\nX-Injected: 1", "OK\nX: 1", "OK\x00"):
        with pytest.raises(ValueError, match="reason phrase"):
            status_line(200, reason)


def test_fields_are_joined_in_order() -> None:
    lines, flags = encode_fields([("Content-Type", "text/plain"), (b"X-Raw", b"caf\xe9")])
    assert lines == "Content-Type: text/plain\r\nX-Raw: caf\xe9\r\n"
    assert flags == 0
    lines, _ = encode_fields({"A": "1", "B": "2"})
    assert lines == "A: 1\r\nB: 2\r\n"


@pytest.mark.parametrize(
    "value",
    ["a\r\nSet-Cookie: x=1", "a\nb", "a\rb", "a\x00b", "a\x7fb", "a\x1bb", "\u2028", "snow\u2603"],
)
def test_no_control_characters_in_values_cve_2020_7695(value: str) -> None:
    # uvicorn once let an application split the response through a header value.
    with pytest.raises(ValueError, match="X-Name"):
        encode_fields([("X-Name", value)])


def test_tab_and_latin_1_are_allowed_in_values() -> None:
    assert encode_fields([("X", "a\tb é")])[0] == "X: a\tb é\r\n"


@pytest.mark.parametrize("name", ["", "X Y", "X:Y", "X\r\nY", "é", "X\x00"])
def test_header_names_must_be_tokens(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid token"):
        encode_fields([(name, "v")])


def test_values_must_be_text() -> None:
    with pytest.raises(TypeError, match="must be str or bytes"):
        encode_fields([("X", 5)])  # type: ignore[list-item]


@pytest.mark.parametrize("name", ["Content-Length", "transfer-encoding"])
def test_framing_belongs_to_the_writer(name: str) -> None:
    with pytest.raises(ValueError, match="set by the writer"):
        encode_fields([(name, "5")])


def test_connection_is_read_and_replaced() -> None:
    assert encode_fields([("Connection", "keep-alive, Close")]) == ("", WANTS_CLOSE)
    assert encode_fields([("Connection", "keep-alive")]) == ("", 0)
    kept = encode_fields([("Connection", "upgrade")], pass_connection=True)
    assert kept == ("Connection: upgrade\r\n", 0)
    assert encode_fields([("Date", "x")])[1] == HAS_DATE


def test_chunks() -> None:
    assert encode_chunk(b"hello") == b"5\r\nhello\r\n"
    assert encode_chunk(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"
    assert LAST_CHUNK == b"0\r\n\r\n"


def test_date_cache_formats_once_per_second() -> None:
    now = [1_700_000_000.25]
    cache = DateCache(lambda: now[0])
    first = cache.line()
    assert first == b"Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
    assert email.utils.parsedate_to_datetime(first[6:-2].decode()).timestamp() == 1_700_000_000
    now[0] += 0.7
    assert cache.line() is first  # same second: the cached bytes object
    now[0] += 0.1
    assert cache.line() == b"Date: Tue, 14 Nov 2023 22:13:21 GMT\r\n"


def test_a_tuple_of_pairs_is_encoded_once_and_kept() -> None:
    pairs = (("Content-Type", "text/x-block-test"), ("Connection", "close"))
    assert pairs not in block_cache
    block = encode_block(pairs)
    assert block == (b"Content-Type: text/x-block-test\r\n", WANTS_CLOSE)
    assert block_cache[pairs] is block
    # Lists are not kept (they may change), nor a 101's fields (Connection stays).
    encode_block([("Content-Type", "text/x-list-test")])
    encode_block((("Connection", "upgrade"), ("Upgrade", "x")), pass_connection=True)
    assert not any("x-list-test" in str(key) or "upgrade" in str(key) for key in block_cache)


def test_a_bad_tuple_is_refused_every_time_and_never_kept() -> None:
    bad = (("X-Evil", "a\r\nSet-Cookie: x=1"),)
    for _ in range(2):
        with pytest.raises(ValueError, match="response splitting"):
            encode_block(bad)
    assert bad not in block_cache
    unhashable = (["X-List", "a\nb"],)
    with pytest.raises(ValueError, match="response splitting"):
        encode_block(unhashable)  # type: ignore[arg-type]
    assert encode_block((["X-List", "fine"],)) == (b"X-List: fine\r\n", 0)  # type: ignore[arg-type]
