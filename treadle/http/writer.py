"""Serializing responses: status line, header fields, Date, framing, chunks.

This module turns what an application says (a status, header pairs, body bytes)
into bytes for the wire, and refuses what would corrupt the stream. It does no
IO; `server.ResponseWriter` decides framing per request and writes the result.

Decisions:

- Header names must be tokens and values must hold no control character but
  HTAB: a CR or LF in a value is response splitting (uvicorn's CVE-2020-7695),
  so it raises `ValueError` naming the header rather than being escaped or
  dropped; it is the application's bug.
- Framing belongs to the writer. An application does not pass `Content-Length`
  or `Transfer-Encoding` among its headers (a `ValueError` says so): it passes a
  body, or a `content_length`, and the writer picks `Content-Length` or chunked.
  A `Connection` field from the application is read (does it say `close`?) and
  replaced by the writer's own, so both sides' wishes meet in one place.
- `Date` is formatted at most once per second (`DateCache`), with an injected
  clock so tests need not sleep; formatting a date per request is a measured
  cost.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Final

__all__ = [
    "DateCache",
    "HeaderPairs",
    "encode_chunk",
    "encode_fields",
    "status_line",
    "take_framing",
]

#: What an application may pass as response headers: a mapping or pairs.
HeaderPairs = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]

_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
# Any CTL but HTAB, and anything latin-1 cannot carry, is refused in a value.
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")

#: A `Connection: close` was asked for by the application's headers.
WANTS_CLOSE: Final = 1
#: The application's headers carry their own `Date`.
HAS_DATE: Final = 2

_FRAMING = ("content-length", "transfer-encoding")

# Names already proved to be tokens, lower-cased; bounded so a stream of odd
# names cannot grow it forever.
_name_cache: dict[str, str] = {}
_NAME_CACHE_MAX: Final = 512

_status_lines: dict[int, bytes] = {}

# Header pairs already validated, with their line: most responses repeat the
# same few (Content-Type, Cache-Control...), and validating them is a measured
# per-response cost. Bounded: once full, new pairs are validated every time.
_line_cache: dict[object, str] = {}
_LINE_CACHE_MAX: Final = 1024

#: Whole header blocks given as a tuple of pairs, already validated, encoded
#: with their flags: a framework that answers most requests with the same
#: fields (one Content-Type) passes the same tuple and skips `encode_fields`.
#: Bounded like the line cache. (Not for a 101, whose Connection is kept.)
block_cache: dict[tuple[Any, ...], tuple[bytes, int]] = {}
_BLOCK_CACHE_MAX: Final = 256


def status_line(status: int, reason: str | None = None) -> bytes:
    """`HTTP/1.1 <status> <reason>\\r\\n`; the reason defaults to the standard one."""
    if reason is None:
        line = _status_lines.get(status)
        if line is not None:
            return line
    if not isinstance(status, int) or not 100 <= status <= 999:
        raise ValueError(f"status must be an int from 100 to 999, not {status!r}")
    if reason is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")
        _status_lines[status] = line
        return line
    if _BAD_VALUE.search(reason):
        raise ValueError(f"reason phrase {reason!r} contains a control character")
    return f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")


def _check_name(name: str) -> str:
    lname = _name_cache.get(name)
    if lname is not None:
        return lname
    if _TOKEN.fullmatch(name) is None:
        raise ValueError(f"header name {name!r} is not a valid token")
    lname = name.lower()
    if len(_name_cache) < _NAME_CACHE_MAX:
        _name_cache[name] = lname
    return lname


def encode_fields(headers: HeaderPairs, *, pass_connection: bool = False) -> tuple[str, int]:
    """Validate an application's header fields and join them into
    `Name: value\\r\\n` lines.

    Returns the lines and flags (`WANTS_CLOSE`, `HAS_DATE`). `Connection` is
    consumed (see the module docstring) unless `pass_connection` is true, as it
    is for a 101 response, whose `Connection: upgrade` the application writes.
    Raises `ValueError` naming the field for an invalid name, a value with a
    control character (CR/LF injection), or a framing field.
    """
    # A list or tuple of pairs is the common case; an ABC isinstance is not free.
    items = (
        headers
        if type(headers) is list or type(headers) is tuple or not isinstance(headers, Mapping)
        else headers.items()
    )
    lines: list[str] = []
    flags = 0
    cache = _line_cache
    for pair in items:
        try:
            line = cache.get(pair) if type(pair) is tuple else None
        except TypeError:  # unhashable: the checks below say what is wrong
            line = None
        if line is not None:
            lines.append(line)
            continue
        name, value = pair
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        elif not isinstance(value, str):
            raise TypeError(f"value of header {name!r} must be str or bytes, not {value!r}")
        lname = _check_name(name)
        if _BAD_VALUE.search(value):
            raise ValueError(
                f"value of header {name!r} contains CR, LF or another control character "
                "(or a character latin-1 cannot encode): refused to prevent response splitting"
            )
        if lname in _FRAMING:
            raise ValueError(
                f"{name!r} is set by the writer: pass a body or content_length instead"
            )
        if lname == "connection" and not pass_connection:
            if "close" in (t.strip().lower() for t in value.split(",")):
                flags |= WANTS_CLOSE
            continue
        if lname == "date":
            flags |= HAS_DATE
            lines.append(f"{name}: {value}\r\n")
            continue
        line = f"{name}: {value}\r\n"
        if len(cache) < _LINE_CACHE_MAX and type(pair) is tuple:
            cache[pair] = line  # proved valid; plain fields only, no flags
        lines.append(line)
    return "".join(lines), flags


_MAX_LENGTH_DIGITS: Final = 18


def take_framing(
    headers: Iterable[Any],
) -> tuple[tuple[tuple[Any, Any], ...], int | None]:
    """An application's response fields (str or bytes pairs, as ASGI and WSGI
    give them) without the framing ones: the fields to pass on, as a tuple
    (the writer's `block_cache` keys on it), and the `Content-Length` it
    announced (None if none). The writer frames the body itself, so
    `Transfer-Encoding` is dropped; a `Content-Length` that is not plain
    ASCII digits, or two that differ, is a `ValueError` (the response would
    lie about its own length)."""
    pairs: list[tuple[Any, Any]] = []
    length: int | None = None
    for pair in headers:
        name, value = pair
        size = len(name)
        # Only two names matter here, of 14 and 17 characters: most fields
        # are passed on without lowering their names.
        if size == 14 and name.lower() in ("content-length", b"content-length"):
            text = value.strip(" \t" if isinstance(value, str) else b" \t")
            if not text.isdigit() or not text.isascii() or len(text) > _MAX_LENGTH_DIGITS:
                raise ValueError(f"invalid content-length {value!r}")
            number = int(text)
            if length is not None and length != number:
                raise ValueError(f"two different content-lengths: {length} and {number}")
            length = number
        elif size == 17 and name.lower() in ("transfer-encoding", b"transfer-encoding"):
            continue
        else:
            pairs.append(pair if type(pair) is tuple else (name, value))
    return tuple(pairs), length


def encode_block(headers: HeaderPairs, *, pass_connection: bool = False) -> tuple[bytes, int]:
    """`encode_fields()`, encoded to bytes; a tuple of pairs is remembered in
    `block_cache` (callers look there first)."""
    text, flags = encode_fields(headers, pass_connection=pass_connection)
    block = (text.encode("latin-1"), flags)
    if type(headers) is tuple and not pass_connection and len(block_cache) < _BLOCK_CACHE_MAX:
        try:
            block_cache[headers] = block
        except TypeError:  # a pair that cannot be hashed: validated, not kept
            pass
    return block


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body: size in hex, CRLF, data, CRLF."""
    return b"".join((b"%x\r\n" % len(data), data, b"\r\n"))


#: The last chunk with no trailers.
LAST_CHUNK: Final = b"0\r\n\r\n"


class DateCache:
    """The `Date: ...\\r\\n` line, formatted at most once per second.

    `clock` returns seconds since the epoch (`time.time` by default); tests
    inject their own.
    """

    __slots__ = ("_clock", "_line", "_second")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        """A cache reading the time from `clock`."""
        self._clock = clock
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        """The current `Date` header line, CRLF included."""
        now = int(self._clock())
        if now != self._second:
            self._second = now
            self._line = b"Date: " + formatdate(now, usegmt=True).encode("ascii") + b"\r\n"
        return self._line
