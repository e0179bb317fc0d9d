"""Streaming `multipart/form-data`: what `await request.post()` and
`await request.multipart()` read.

The design is the HTTP layer's, one level up: `MultipartParser` is sans-IO
(bytes in, events out, no loop, no clock) and holds every framing rule of
RFC 2046 and RFC 7578 in one place, so it can be tested byte by byte. The
readers on top pull the body from `request.content` one chunk at a time and
only when the application asks for more, so whatever the size of the upload,
memory holds one chunk plus a look-behind as long as the boundary. Nothing ever
reads the whole body first.

- `MultipartReader` / `BodyPartReader`: aiohttp's streaming API
  (`async for part in await request.multipart()`, `part.read_chunk()`, ...).
- `read_form(request)`: what `request.post()` returns for a multipart body: a
  `MultiDict` of text fields (`str`) and file parts (`FileField`, the file a
  `tempfile.SpooledTemporaryFile`: in memory up to `spool_threshold`, on disk
  past it, rewound to 0; the caller owns it and should close it).

Limits (`FormLimits`; defaults in brackets). Over one, the client gets a clean
answer and the server goes on serving:

- `max_size` (413): bytes of the body read, framing, files and all. `read_form`
  uses the application's `client_max_size` [1 MiB] as aiohttp does, so files
  count too: an app taking uploads must raise it (and the HTTP layer's
  `Limits.max_body_size`, which refuses a larger body before any handler runs).
  The streaming reader has none of its own [None]: the HTTP layer's bound holds.
- `max_parts` (413): parts in the body [1000, aiohttp's `client_max_fields`].
- `max_field_size` (413): bytes of one text (non-file) field, which `read_form`
  holds in memory [1 MiB].
- `max_header_size` (400): bytes of one part's header block [8 KiB].
- `max_headers` (400): header lines in one part [32].
- `max_name_length` (400): characters of a field name [1024].
- `max_preamble`, `max_epilogue` (400): bytes before the first boundary and
  after the last, both ignored [16 KiB each].
- `spool_threshold`: bytes of a file kept in memory before it moves to disk [1 MiB].
- `chunk_size`: bytes read from the body at a time [64 KiB].

Where this is stricter than aiohttp (each a 400; aiohttp accepts or guesses):

- The boundary parameter must be RFC 2046's: 1-70 characters from its set, not
  ending in a space; a missing, empty, duplicated or malformed one is refused.
- Lines end in CRLF: a bare LF in a boundary line or part header, or before a
  boundary (`\\n--boundary` without the CR), is refused, not read as a line.
- The body must end with the closing delimiter `--boundary--`; one that stops
  before it is refused (aiohttp returns what it had).
- A delimiter must be followed by `--`, or by optional spaces/tabs and CRLF:
  `--boundaryX` at a line start means the boundary occurs in the content,
  which RFC 2046 forbids, and is refused rather than guessed about.
- Part headers: a line without a colon, a field name that is not a token,
  obs-fold (a line starting with a space or tab), and any control character
  but tab in a value (NUL, CR, LF, ...) are refused. Header bytes are UTF-8
  (what browsers send), read as Latin-1 when they are not.
- In a form-data body every part has one `Content-Disposition: form-data` with
  a `name`; parameters are tokens or quoted-strings, none repeated.
  `filename*=` (an RFC 5987 ext-value in UTF-8 or ISO-8859-1) wins over
  `filename`. Only the last path segment of a filename is kept (after `/` or
  `\\`, so `C:\\dir\\a.txt` and `../../a.txt` are `a.txt`; `.` and `..` become
  ''): a filename is a label from the client, never a path to trust.
- Inside a quoted-string only `\\"` and `\\\\` are escapes; any other backslash
  is kept, because browsers send Windows paths unescaped.
- `Content-Transfer-Encoding` other than 7bit/8bit/binary is refused (RFC 7578
  deprecates it; aiohttp decodes base64 and quoted-printable), and a part
  whose type is `multipart/*` (nested multipart, RFC 7578 section 4.3 says
  not to send it) is refused too.
- A part's text is decoded strictly: with its own `charset`, else the form's
  `_charset_` field, else UTF-8; bytes invalid in that charset, or an unknown
  charset, are a 400. Every part without a filename is a text field (aiohttp
  gives `bytes` for a part typed other than text/*); every part with one, even
  `filename=""` (an empty file input), is a `FileField` (aiohttp makes that a
  text field).

Accepted where RFC 2046 is stricter: a body with no parts (`--boundary--`, what
browsers send for an empty form), and transport padding (spaces/tabs, up to
128) after a boundary, which receivers must accept.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol, Self, TypeAlias
from urllib.parse import parse_qsl

from ..http.errors import HTTPError
from ..http.headers import Headers
from .exceptions import (
    HTTPBadRequest,
    HTTPException,
    HTTPRequestEntityTooLarge,
    HTTPRequestTimeout,
)
from .multidict import CIMultiDict, MultiDict, MultiDictProxy
from .request import FileField, JSONBadRequest

if TYPE_CHECKING:
    from .request import Request

__all__ = [
    "END",
    "NEED_DATA",
    "PART_END",
    "BodyPartReader",
    "FormLimits",
    "MultipartError",
    "MultipartParser",
    "MultipartReader",
    "PartStart",
    "check_boundary",
    "read_form",
    "safe_filename",
]


class FormLimits:
    """Bounds on a multipart body; see the module docstring for each one.

    Every argument is keyword-only and positive (`max_size` may be None: no
    bound but the HTTP layer's).
    """

    __slots__ = (
        "chunk_size",
        "max_epilogue",
        "max_field_size",
        "max_header_size",
        "max_headers",
        "max_name_length",
        "max_parts",
        "max_preamble",
        "max_size",
        "spool_threshold",
    )

    def __init__(
        self,
        *,
        max_size: int | None = None,
        max_parts: int = 1000,
        max_field_size: int = 1024 * 1024,
        max_header_size: int = 8192,
        max_headers: int = 32,
        max_name_length: int = 1024,
        max_preamble: int = 16384,
        max_epilogue: int = 16384,
        spool_threshold: int = 1024 * 1024,
        chunk_size: int = 65536,
    ) -> None:
        """Limits with the defaults the module docstring lists."""
        for name, value in (
            ("max_size", max_size),
            ("max_parts", max_parts),
            ("max_field_size", max_field_size),
            ("max_header_size", max_header_size),
            ("max_headers", max_headers),
            ("max_name_length", max_name_length),
            ("max_preamble", max_preamble),
            ("max_epilogue", max_epilogue),
            ("spool_threshold", spool_threshold),
            ("chunk_size", chunk_size),
        ):
            if value is None and name == "max_size":
                continue
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, not {value!r}")
        self.max_size = max_size
        self.max_parts = max_parts
        self.max_field_size = max_field_size
        self.max_header_size = max_header_size
        self.max_headers = max_headers
        self.max_name_length = max_name_length
        self.max_preamble = max_preamble
        self.max_epilogue = max_epilogue
        self.spool_threshold = spool_threshold
        self.chunk_size = chunk_size

    def replace(self, **changes: Any) -> FormLimits:
        """A copy with the given limits changed."""
        values = {name: getattr(self, name) for name in self.__slots__}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"unknown limits: {', '.join(sorted(unknown))}")
        values.update(changes)
        return FormLimits(**values)

    def __repr__(self) -> str:
        body = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"FormLimits({body})"


DEFAULT_LIMITS: Final = FormLimits()

# -- the sans-IO parser -------------------------------------------------------------------


class MultipartError(ValueError):
    """The body breaks a rule of multipart framing (RFC 2046/7578): a 400."""


class PartStart(NamedTuple):
    """Event: a part begins; its header fields as (name, value) strings, in order."""

    headers: tuple[tuple[str, str], ...]


class _Marker:
    """A named singleton event."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: Event: the parser needs more bytes (or `feed_eof()`) to go on.
NEED_DATA: Final = _Marker("NEED_DATA")
#: Event: the current part's content is complete.
PART_END: Final = _Marker("PART_END")
#: Event: the closing delimiter and the whole epilogue have been read.
END: Final = _Marker("END")
# Internal: the state changed, step again.
_AGAIN: Final = _Marker("_AGAIN")

#: What `MultipartParser.next_event()` returns: a piece of the current part's
#: content (bytes, never empty), `PartStart`, or one of the markers above.
Event: TypeAlias = "bytes | PartStart | _Marker"

_PREAMBLE: Final = 0  # before the first boundary
_AFTER_BOUNDARY: Final = 1  # right after "--boundary": "--", or padding and CRLF
_HEADERS: Final = 2  # a part's header lines
_BODY: Final = 3  # a part's content
_AFTER_CLOSE: Final = 4  # right after "--boundary--": padding, then CRLF or the end
_EPILOGUE: Final = 5  # after the closing delimiter's line
_DONE: Final = 6

_CR: Final = 13
_LF: Final = 10
# Transport padding after a boundary (RFC 2046): receivers must accept it, but
# a boundary line padded without end would let a client hold a buffer open.
_MAX_PADDING: Final = 128

_TCHARS = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
_TOKEN_BYTES = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Controls other than HTAB: never valid in a header value (RFC 9110 field-value).
_CTL_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 2046 bchars: bcharsnospace plus space (which may not end the boundary).
_BCHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ")


def _decode_header(value: bytes) -> str:
    # Browsers send names and filenames as raw UTF-8; a client that sends
    # another 8-bit charset still gets every byte back, as Latin-1.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def check_boundary(boundary: str) -> bytes:
    """The boundary as bytes if RFC 2046 allows it (1-70 characters from its
    set, no trailing space); `MultipartError` otherwise."""
    if not 1 <= len(boundary) <= 70:
        raise MultipartError(f"boundary must be 1-70 characters, not {len(boundary)}")
    if not _BCHARS.issuperset(boundary):
        raise MultipartError("boundary has a character RFC 2046 does not allow")
    if boundary.endswith(" "):
        raise MultipartError("boundary ends with a space")
    return boundary.encode("ascii")


class MultipartParser:
    """The framing of a multipart body, sans-IO: `feed()` bytes and
    `feed_eof()`, then call `next_event()` until it returns `NEED_DATA`.

    Events, in order: `PartStart`, the part's content as pieces of bytes,
    `PART_END`; again per part; then `END` once the closing delimiter and the
    epilogue up to EOF are read. Bad framing raises `MultipartError` (and
    every later call raises it again).

    Content is handed out as soon as it cannot be the start of a delimiter,
    so the parser buffers at most one fed piece plus the boundary's length
    (plus a part's header block, bounded by `max_header_size`).
    """

    __slots__ = (
        "_at_start",
        "_body_started",
        "_buf",
        "_dash",
        "_eof",
        "_error",
        "_header_bytes",
        "_headers",
        "_max_epilogue",
        "_max_header_size",
        "_max_headers",
        "_max_preamble",
        "_needle",
        "_skipped",
        "_state",
    )

    def __init__(self, boundary: str | bytes, limits: FormLimits = DEFAULT_LIMITS) -> None:
        """A parser for a body delimited by `boundary` (the Content-Type's
        parameter, unquoted); `MultipartError` if it is not a valid one."""
        if isinstance(boundary, bytes):
            boundary = boundary.decode("latin-1")
        raw = check_boundary(boundary)
        self._dash = b"--" + raw
        # The delimiter is CRLF "--" boundary. Searching from the LF finds a
        # delimiter with a bare LF too, so it can be refused, not missed.
        self._needle = b"\n--" + raw
        self._buf = bytearray()
        self._eof = False
        self._state = _PREAMBLE
        self._at_start = True
        self._skipped = 0
        self._header_bytes = 0
        self._headers: list[tuple[str, str]] = []
        self._body_started = False
        self._error: MultipartError | None = None
        self._max_header_size = limits.max_header_size
        self._max_headers = limits.max_headers
        self._max_preamble = limits.max_preamble
        self._max_epilogue = limits.max_epilogue

    def feed(self, data: bytes) -> None:
        """Append bytes of the body."""
        if self._eof:
            raise RuntimeError("feed() after feed_eof()")
        self._buf += data

    def feed_eof(self) -> None:
        """The body is complete."""
        self._eof = True

    def next_event(self) -> Event:
        """The next event; `NEED_DATA` when the bytes fed so far are used up."""
        if self._error is not None:
            raise self._error
        try:
            while True:
                state = self._state
                if state == _BODY:
                    event = self._body()
                elif state == _HEADERS:
                    event = self._header_line()
                elif state == _AFTER_BOUNDARY:
                    event = self._after_boundary()
                elif state == _PREAMBLE:
                    event = self._preamble()
                elif state == _AFTER_CLOSE:
                    event = self._after_close()
                elif state == _EPILOGUE:
                    event = self._epilogue()
                else:
                    return END
                if event is not _AGAIN:
                    return event
        except MultipartError as exc:
            self._error = exc
            self._state = _DONE
            self._buf.clear()
            raise

    def _truncated(self, where: str) -> MultipartError:
        return MultipartError(f"body ended {where}, before the closing boundary")

    def _preamble(self) -> Event:
        buf = self._buf
        if self._at_start:
            # The first boundary may open the body with no CRLF before it.
            dash = self._dash
            n = min(len(buf), len(dash))
            if buf[:n] == dash[:n]:
                if n == len(dash):
                    del buf[:n]
                    self._state = _AFTER_BOUNDARY
                    return _AGAIN
                if not self._eof:
                    return NEED_DATA
            self._at_start = False
        needle = self._needle
        i = buf.find(needle)
        if i < 0:
            # Keep what could be the start of a delimiter; the rest is preamble.
            drop = len(buf) - len(needle)
            if drop > 0:
                self._skipped += drop
                del buf[:drop]
            if self._skipped > self._max_preamble:
                raise MultipartError(f"no boundary in the first {self._max_preamble} bytes")
            if self._eof:
                raise MultipartError("body ended before the first boundary")
            return NEED_DATA
        if i == 0 or buf[i - 1] != _CR:
            raise MultipartError("bare LF before a boundary")
        if self._skipped + i - 1 > self._max_preamble:
            raise MultipartError(f"preamble longer than {self._max_preamble} bytes")
        del buf[: i + len(needle)]
        self._skipped = 0
        self._state = _AFTER_BOUNDARY
        return _AGAIN

    def _padding(self) -> int:
        """Index of the first byte after transport padding (spaces and tabs)."""
        buf = self._buf
        j = 0
        n = len(buf)
        while j < n and buf[j] in b" \t":
            j += 1
        if j > _MAX_PADDING:
            raise MultipartError(f"more than {_MAX_PADDING} bytes of padding after a boundary")
        return j

    def _line_end(self, j: int, where: str) -> bool:
        """Whether CRLF is at `j` (False: need more bytes); refuse anything else."""
        buf = self._buf
        if j == len(buf):
            return False
        if buf[j] == _LF:
            raise MultipartError(f"bare LF {where}")
        if buf[j] != _CR:
            raise MultipartError(f"unexpected bytes {where}")
        if j + 1 == len(buf):
            return False
        if buf[j + 1] != _LF:
            raise MultipartError(f"CR without LF {where}")
        return True

    def _after_boundary(self) -> Event:
        buf = self._buf
        if buf[:2] == b"--":
            del buf[:2]
            self._state = _AFTER_CLOSE
            return _AGAIN
        if buf == b"-":
            if self._eof:
                raise self._truncated("in a boundary line")
            return NEED_DATA
        j = self._padding()
        if not self._line_end(j, "after a boundary"):
            if self._eof:
                raise self._truncated("in a boundary line")
            return NEED_DATA
        del buf[: j + 2]
        self._state = _HEADERS
        self._headers = []
        self._header_bytes = 0
        return _AGAIN

    def _after_close(self) -> Event:
        j = self._padding()
        if j == len(self._buf) and self._eof:
            self._state = _DONE
            return END
        if not self._line_end(j, "after the closing boundary"):
            if self._eof:
                raise MultipartError("CR without LF after the closing boundary")
            return NEED_DATA
        del self._buf[: j + 2]
        self._skipped = 0
        self._state = _EPILOGUE
        return _AGAIN

    def _epilogue(self) -> Event:
        self._skipped += len(self._buf)
        self._buf.clear()
        if self._skipped > self._max_epilogue:
            raise MultipartError(f"epilogue longer than {self._max_epilogue} bytes")
        if self._eof:
            self._state = _DONE
            return END
        return NEED_DATA

    def _header_line(self) -> Event:
        buf = self._buf
        limit = self._max_header_size
        i = buf.find(b"\n")
        if i < 0:
            if self._header_bytes + len(buf) > limit:
                raise MultipartError(f"part headers longer than {limit} bytes")
            if self._eof:
                raise self._truncated("in part headers")
            return NEED_DATA
        self._header_bytes += i + 1
        if self._header_bytes > limit:
            raise MultipartError(f"part headers longer than {limit} bytes")
        if i == 0 or buf[i - 1] != _CR:
            raise MultipartError("bare LF in part headers")
        if i == 1:
            # The empty line. It stays in the buffer: if a delimiter follows at
            # once, its CRLF is the delimiter's and the part has no content.
            self._state = _BODY
            self._body_started = False
            return PartStart(tuple(self._headers))
        line = bytes(buf[: i - 1])
        del buf[: i + 1]
        if line[0] in b" \t":
            raise MultipartError("folded header line (obs-fold) in a part")
        name, colon, value = line.partition(b":")
        if not colon:
            raise MultipartError("part header line without a colon")
        if _TOKEN_BYTES.fullmatch(name) is None:
            raise MultipartError("invalid part header name")
        value = value.strip(b" \t")
        if _CTL_BYTES.search(value) is not None:
            raise MultipartError("control character in a part header value")
        if len(self._headers) >= self._max_headers:
            raise MultipartError(f"more than {self._max_headers} headers in a part")
        self._headers.append((name.decode("ascii"), _decode_header(value)))
        return _AGAIN

    def _body(self) -> Event:
        buf = self._buf
        needle = self._needle
        i = buf.find(needle)
        if i >= 0:
            if i == 0 or buf[i - 1] != _CR:
                raise MultipartError("bare LF before a boundary")
            end = i - 1
        elif self._eof:
            raise self._truncated("in a part")
        else:
            # Hold back what could be the start of "\r\n--boundary".
            end = len(buf) - len(needle)
        if not self._body_started and end > 0:
            # The content proper starts after the CRLF of the empty line.
            if end < 2:
                return NEED_DATA
            del buf[:2]
            end -= 2
            self._body_started = True
        if end > 0:
            data = bytes(buf[:end])
            del buf[:end]
            self._body_started = True
            return data
        if i < 0:
            return NEED_DATA
        # The buffer opens with the delimiter.
        del buf[: 1 + len(needle)]
        self._state = _AFTER_BOUNDARY
        return PART_END


# -- header parameters --------------------------------------------------------------------

_TOKEN = re.compile(f"[{_TCHARS}]+")
_MEDIA_TYPE = re.compile(f"[{_TCHARS}]+/[{_TCHARS}]+")
# One `; name=value` (or an empty `;`, which RFC 9110 allows). Inside a
# quoted-string: any character but '"', '\' and controls (tab is fine), or a
# backslash pair.
_PARAM = re.compile(
    f"[ \\t]*;[ \\t]*(?:([{_TCHARS}]+)=(?:([{_TCHARS}]+)"
    r'|"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*)"))?'
)
_ESCAPE = re.compile(r'\\(["\\])')
_EXT_VALUE = re.compile(
    r"([A-Za-z0-9!#$%&+\-^_`{}~]+)'([A-Za-z0-9\-]*)'((?:%[0-9A-Fa-f]{2}|[A-Za-z0-9!#$&+\-.^_`|~])*)"
)
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_CTL_TEXT = re.compile(r"[\x00-\x1f\x7f]")


class _Params(NamedTuple):
    value: str
    params: dict[str, str]
    quoted: frozenset[str]


def _parse_params(header: str, what: str, main: re.Pattern[str]) -> _Params:
    """`main; name=value; ...`: the main value lowercased, the parameters by
    lowercased name, and which of them were quoted-strings."""
    header = header.strip(" \t")
    m = main.match(header)
    if m is None:
        raise MultipartError(f"malformed {what}")
    pos = m.end()
    params: dict[str, str] = {}
    quoted: set[str] = set()
    while pos < len(header):
        p = _PARAM.match(header, pos)
        if p is None or p.end() == pos:
            raise MultipartError(f"malformed {what} parameters")
        pos = p.end()
        if p[1] is None:
            continue
        name = p[1].lower()
        if name in params:
            raise MultipartError(f"repeated {name!r} parameter in {what}")
        if p[2] is not None:
            params[name] = p[2]
        else:
            params[name] = _ESCAPE.sub(r"\1", p[3])
            quoted.add(name)
    return _Params(m[0].lower(), params, frozenset(quoted))


def _decode_ext_value(value: str) -> str:
    """An RFC 5987 ext-value (`UTF-8''%e2%82%ac.txt`) decoded."""
    m = _EXT_VALUE.fullmatch(value)
    if m is None:
        raise MultipartError("malformed filename* value")
    charset = m[1].lower()
    if charset not in ("utf-8", "iso-8859-1"):
        raise MultipartError("filename* charset must be UTF-8 or ISO-8859-1")
    # The pieces alternate: literal attr-chars, then two hex digits. The hex is
    # checked by the pattern, and bytes.fromhex takes nothing else.
    pieces = _PCT.split(m[3])
    raw = bytearray()
    for k, piece in enumerate(pieces):
        raw += bytes.fromhex(piece) if k % 2 else piece.encode("ascii")
    try:
        text = raw.decode("utf-8" if charset == "utf-8" else "latin-1")
    except UnicodeDecodeError:
        raise MultipartError("filename* is not valid UTF-8") from None
    # Percent-escapes must not smuggle in what a quoted filename cannot hold.
    if _CTL_TEXT.search(text) is not None:
        raise MultipartError("control character in filename*")
    return text


def safe_filename(filename: str) -> str:
    """The last path segment of a client's filename: `a/b/c.txt`, `C:\\x\\c.txt`
    and `../c.txt` all give `c.txt`; `.` and `..` give ''."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "" if base in (".", "..") else base


class _PartInfo(NamedTuple):
    name: str | None
    filename: str | None
    content_type: str | None
    charset: str | None


def _describe_part(headers: MultiDictProxy[str], form_data: bool, limits: FormLimits) -> _PartInfo:
    """Check a part's headers and pull out what the readers need."""
    for field in ("Content-Disposition", "Content-Type", "Content-Transfer-Encoding"):
        if len(headers.getall(field, ())) > 1:
            raise MultipartError(f"repeated {field} in a part")
    content_type = headers.get("Content-Type")
    charset = None
    if content_type is not None:
        ctype = _parse_params(content_type, "part Content-Type", _MEDIA_TYPE)
        if ctype.value.startswith("multipart/"):
            raise MultipartError("nested multipart parts are not supported")
        charset = ctype.params.get("charset")
    cte = headers.get("Content-Transfer-Encoding")
    if cte is not None and cte.strip(" \t").lower() not in ("7bit", "8bit", "binary"):
        raise MultipartError("Content-Transfer-Encoding other than 7bit, 8bit or binary")
    disposition = headers.get("Content-Disposition")
    if disposition is None:
        if form_data:
            raise MultipartError("part without Content-Disposition")
        return _PartInfo(None, None, content_type, charset)
    cd = _parse_params(disposition, "Content-Disposition", _TOKEN)
    if form_data and cd.value != "form-data":
        raise MultipartError("Content-Disposition of a part is not form-data")
    name = cd.params.get("name")
    if name is None and form_data:
        raise MultipartError("form-data part without a name")
    if name is not None and len(name) > limits.max_name_length:
        raise MultipartError(f"field name longer than {limits.max_name_length} characters")
    filename = cd.params.get("filename")
    if "filename*" in cd.params:
        if "filename*" in cd.quoted:
            raise MultipartError("filename* value is quoted")
        filename = _decode_ext_value(cd.params["filename*"])
    if filename is not None:
        filename = safe_filename(filename)
    return _PartInfo(name, filename, content_type, charset)


def _decode_text(data: bytes, charset: str, what: str) -> str:
    """`data` decoded from the client's `charset`; a 400 if the charset is
    unknown or the bytes are not valid in it."""
    try:
        return data.decode(charset)
    except LookupError:
        raise HTTPBadRequest(text=f"400: Bad Request (unknown charset {charset!r})") from None
    except UnicodeDecodeError:
        raise HTTPBadRequest(text=f"400: Bad Request ({what} is not {charset})") from None


def _bad_request(exc: MultipartError) -> HTTPBadRequest:
    return HTTPBadRequest(text=f"400: Bad Request ({exc})")


def _from_http_error(exc: HTTPError) -> HTTPException:
    # The body stream raises the HTTP layer's error (a chunked body over the
    # server's limit, a read timeout); in a handler it must become the web
    # exception of the same status, or the application answers 500.
    text = f"{exc.status}: {exc.reason} ({exc.detail})"
    if exc.status == 413:
        return HTTPRequestEntityTooLarge(max_size=0, text=text)
    if exc.status == 408:
        return HTTPRequestTimeout(text=text)
    return HTTPBadRequest(text=text)


# -- the streaming readers ----------------------------------------------------------------


class _Stream(Protocol):
    """What the readers need of a body: `Body`, `asyncio.StreamReader`, ..."""

    async def read(self, n: int = -1) -> bytes: ...


class MultipartReader:
    """The parts of a multipart body, one at a time, as the body arrives:

        async for part in await request.multipart():
            if part.filename is not None:
                while chunk := await part.read_chunk():
                    ...
            else:
                value = await part.text()

    A part is valid until the next one is asked for: moving on skips whatever
    of it was not read. One task reads at a time. Client errors in the body are
    raised as `HTTPBadRequest` (400) or `HTTPRequestEntityTooLarge` (413).
    """

    __slots__ = (
        "_content",
        "_current",
        "_done",
        "_form_data",
        "_limits",
        "_parser",
        "_parts",
        "_read",
        "content_type",
    )

    def __init__(
        self,
        headers: Mapping[str, str] | Headers,
        content: _Stream,
        *,
        limits: FormLimits = DEFAULT_LIMITS,
    ) -> None:
        """A reader of `content`, a body whose `Content-Type` is in `headers`.
        A missing or malformed multipart Content-Type is a 400."""
        raw = headers.get("Content-Type")
        try:
            if raw is None:
                raise MultipartError("no Content-Type")
            ctype = _parse_params(raw, "Content-Type", _MEDIA_TYPE)
            if not ctype.value.startswith("multipart/"):
                raise MultipartError(f"Content-Type is {ctype.value}, not multipart")
            boundary = ctype.params.get("boundary")
            if boundary is None:
                raise MultipartError("no boundary parameter in Content-Type")
            self._parser = MultipartParser(boundary, limits)
        except MultipartError as exc:
            raise _bad_request(exc) from None
        #: The body's media type, lowercased (`multipart/form-data`, ...).
        self.content_type = ctype.value
        self._form_data = ctype.value == "multipart/form-data"
        self._content = content
        self._limits = limits
        self._read = 0
        self._parts = 0
        self._current: BodyPartReader | None = None
        self._done = False

    @classmethod
    def from_request(cls, request: Request, *, limits: FormLimits = DEFAULT_LIMITS) -> Self:
        """A reader of `request`'s body (what `await request.multipart()` gives)."""
        ctypes = request.headers.getall("Content-Type")
        if len(ctypes) > 1:
            raise HTTPBadRequest(text="400: Bad Request (repeated Content-Type)")
        return cls(request.headers, request.content, limits=limits)

    def __aiter__(self) -> MultipartReader:
        return self

    async def __anext__(self) -> BodyPartReader:
        part = await self.next()
        if part is None:
            raise StopAsyncIteration
        return part

    def at_eof(self) -> bool:
        """Whether the closing boundary (and the body's end) has been read."""
        return self._done

    async def next(self) -> BodyPartReader | None:
        """The next part, or None after the last. The previous part's unread
        content is skipped."""
        if self._done:
            return None
        current = self._current
        if current is not None:
            await current.release()
            self._current = None
        event = await self._event()
        if event is END:
            self._done = True
            return None
        assert isinstance(event, PartStart), event
        self._parts += 1
        limit = self._limits.max_parts
        if self._parts > limit:
            raise HTTPRequestEntityTooLarge(
                max_size=limit, text=f"413: Request Entity Too Large (more than {limit} parts)"
            )
        headers = MultiDictProxy(CIMultiDict(event.headers))
        try:
            info = _describe_part(headers, self._form_data, self._limits)
        except MultipartError as exc:
            raise _bad_request(exc) from None
        part = BodyPartReader(self, headers, info)
        self._current = part
        return part

    async def release(self) -> None:
        """Skip every remaining part, through the end of the body."""
        while await self.next() is not None:
            pass

    async def _event(self) -> Event:
        """The parser's next event, reading the body as it needs."""
        parser = self._parser
        while True:
            try:
                event = parser.next_event()
            except MultipartError as exc:
                raise _bad_request(exc) from None
            if event is not NEED_DATA:
                return event
            try:
                chunk = await self._content.read(self._limits.chunk_size)
            except HTTPError as exc:
                raise _from_http_error(exc) from None
            if not chunk:
                parser.feed_eof()
                continue
            self._read += len(chunk)
            limit = self._limits.max_size
            if limit is not None and self._read > limit:
                # (The size so far is no "actual size": the rest is never read.)
                raise HTTPRequestEntityTooLarge(max_size=limit)
            parser.feed(chunk)


class BodyPartReader:
    """One part of a multipart body, read as it arrives (from `MultipartReader`).

    `name` and `filename` come from its `Content-Disposition` (None when
    absent; the filename reduced to its last path segment), `headers` are its
    header fields (case-insensitive, read-only).
    """

    __slots__ = (
        "_at_eof",
        "_charset",
        "_pending",
        "_reader",
        "content_type",
        "filename",
        "headers",
        "name",
    )

    #: The default size of `read_chunk()` and of the pieces `async for` gives.
    chunk_size: Final = 65536

    def __init__(self, reader: MultipartReader, headers: MultiDictProxy[str], info: _PartInfo):
        """Made by `MultipartReader.next()`."""
        self._reader = reader
        self.headers = headers
        self.name = info.name
        self.filename = info.filename
        #: The part's Content-Type as sent, or None.
        self.content_type = info.content_type
        self._charset = info.charset
        self._pending = b""
        self._at_eof = False

    def __repr__(self) -> str:
        return f"<BodyPartReader name={self.name!r} filename={self.filename!r}>"

    def at_eof(self) -> bool:
        """Whether the part's content has been read (or skipped) to its end."""
        return self._at_eof

    def get_charset(self, default: str) -> str:
        """The `charset` of the part's Content-Type, else `default`."""
        return self._charset or default

    async def read_chunk(self, size: int = chunk_size) -> bytes:
        """Up to `size` bytes of content (fewer if that is what has arrived);
        b'' at the end of the part."""
        if size <= 0:
            raise ValueError(f"size must be positive, not {size}")
        if self._at_eof:
            return b""
        data = self._pending
        if not data:
            event = await self._reader._event()
            if event is PART_END:
                self._at_eof = True
                return b""
            assert isinstance(event, bytes), event
            data = event
        if len(data) > size:
            self._pending = data[size:]
            return data[:size]
        self._pending = b""
        return data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """The content in pieces of at most `chunk_size` bytes."""
        while chunk := await self.read_chunk():
            yield chunk

    async def read(self, *, decode: bool = False) -> bytes:
        """The rest of the content, whole, in memory (stream a large part with
        `read_chunk()` instead). `decode` is accepted for aiohttp's sake: no
        transfer encoding is allowed, so there is nothing to undo."""
        chunks = []
        while chunk := await self.read_chunk():
            chunks.append(chunk)
        return b"".join(chunks)

    async def release(self) -> None:
        """Skip the rest of the content."""
        while await self.read_chunk():
            pass

    async def text(self, *, encoding: str | None = None) -> str:
        """The content decoded with `encoding`, else the part's charset, else
        UTF-8; a 400 if it is not valid in that charset (or the part names a
        charset Python does not know)."""
        if encoding is not None:
            codecs.lookup(encoding)  # the application's choice: a bad one is its LookupError
        return _decode_text(await self.read(), encoding or self.get_charset("utf-8"), "part")

    async def json(
        self, *, encoding: str | None = None, loads: Callable[[str], Any] = json.loads
    ) -> Any:
        """The content parsed as JSON (None if empty, as aiohttp); invalid JSON
        is a 400 (`JSONBadRequest`)."""
        text = await self.text(encoding=encoding)
        if not text:
            return None
        try:
            return loads(text)
        except ValueError as exc:
            raise JSONBadRequest(text=f"400: Bad Request (invalid JSON: {exc})") from None

    async def form(self, *, encoding: str | None = None) -> list[tuple[str, str]]:
        """The content parsed as `application/x-www-form-urlencoded` pairs."""
        text = await self.text(encoding=encoding)
        charset = encoding or self.get_charset("utf-8")
        try:
            return parse_qsl(
                text.rstrip(), keep_blank_values=True, encoding=charset, errors="strict"
            )
        except UnicodeDecodeError:
            raise HTTPBadRequest(text="400: Bad Request (form is not valid text)") from None


# -- request.post() -----------------------------------------------------------------------


async def _spool(part: BodyPartReader, limits: FormLimits) -> FileField:
    """A file part's content in a temporary file, rewound."""
    threshold = limits.spool_threshold
    # Closed here on error; on success the FileField's owner closes it.
    file = tempfile.SpooledTemporaryFile(max_size=threshold)  # noqa: SIM115
    try:
        loop = asyncio.get_running_loop()
        size = 0
        while chunk := await part.read_chunk(limits.chunk_size):
            size += len(chunk)
            if size > threshold:
                # On disk (this write moves it there): keep the loop free.
                await loop.run_in_executor(None, file.write, chunk)
            else:
                file.write(chunk)
        file.seek(0)
    except BaseException:
        file.close()
        raise
    assert part.name is not None and part.filename is not None
    content_type = part.content_type or "application/octet-stream"
    return FileField(part.name, part.filename, file, content_type, part.headers)


async def _field_bytes(part: BodyPartReader, limits: FormLimits) -> bytes:
    """A text part's content, bounded by `max_field_size`."""
    limit = limits.max_field_size
    chunks = []
    size = 0
    while chunk := await part.read_chunk(limits.chunk_size):
        size += len(chunk)
        if size > limit:
            raise HTTPRequestEntityTooLarge(
                max_size=limit,
                text=f"413: Request Entity Too Large (field {part.name!r} over {limit} bytes)",
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(
    request: Request, *, limits: FormLimits | None = None
) -> MultiDict[str | FileField]:
    """The fields of a `multipart/form-data` request (what `request.post()`
    returns for one): text as `str`, file parts as `FileField`s.

    `limits` default to `FormLimits()` with `max_size` the application's
    `client_max_size`. On any error the files made so far are closed.
    """
    if limits is None:
        limits = DEFAULT_LIMITS
    if limits.max_size is None:
        client_max_size = request.app._client_max_size
        limits = limits.replace(max_size=client_max_size or None)
    reader = MultipartReader.from_request(request, limits=limits)
    if not reader._form_data:
        raise HTTPBadRequest(text="400: Bad Request (expected multipart/form-data)")
    # Text is decoded at the end: the `_charset_` field that names the
    # default charset may come after the fields it applies to.
    entries: list[FileField | tuple[str, bytes, str | None]] = []
    try:
        async for part in reader:
            assert part.name is not None  # form-data parts always have one
            if part.filename is not None:
                entries.append(await _spool(part, limits))
            else:
                entries.append((part.name, await _field_bytes(part, limits), part._charset))
        default = "utf-8"
        for entry in entries:
            if not isinstance(entry, FileField) and entry[0] == "_charset_":
                default = _decode_text(entry[1], "ascii", "_charset_").strip(" \t") or "utf-8"
                break
        form: MultiDict[str | FileField] = MultiDict()
        for entry in entries:
            if isinstance(entry, FileField):
                form.add(entry.name, entry)
            else:
                name, data, charset = entry
                # `_charset_` itself is ASCII whatever charset it names.
                fallback = "utf-8" if name == "_charset_" else default
                form.add(name, _decode_text(data, charset or fallback, "form field"))
        return form
    except BaseException:
        for entry in entries:
            if isinstance(entry, FileField):
                entry.file.close()
        raise
