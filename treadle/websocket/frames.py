"""WebSocket frames (RFC 6455 section 5): opcodes, close codes, masking, encoding.

What the rest of the WebSocket layer shares: the names a user sees
(`WSMsgType`, `WSMessage`, `WSCloseCode`, `WebSocketError`, with aiohttp's
names and values, so aiohttp code ports by changing an import), the rule of
which close codes may be sent, the masking function, and `encode_frame()`.
Decoding lives in `codec.py`, where the frame and message rules are applied
in one pass.

Masking is the one per-byte cost of the protocol. `python_mask()` does it with
one big-integer XOR (`int.from_bytes`), linear and in C inside the
interpreter, yet 26 us for 16 KiB; the optional C function `_speedups.mask`
does it eight bytes at a time (about 1 us) where it was built, and `mask` is
whichever is in use. The tests run the codec with both.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from enum import IntEnum
from typing import Any, Final, NamedTuple

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "WSCloseCode",
    "WSMessage",
    "WSMsgType",
    "WebSocketError",
    "close_code_error",
    "encode_frame",
    "mask",
    "mask_key",
    "message",
    "python_mask",
]

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA

FIN: Final = 0x80
RSV1: Final = 0x40
MASK_BIT: Final = 0x80


class WSMsgType(IntEnum):
    """The kind of a `WSMessage`: the frame opcodes of data and control
    messages, and three states of the connection (aiohttp's values)."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    PING = 0x9
    PONG = 0xA
    CLOSE = 0x8
    #: The peer's close frame was received and the close is under way.
    CLOSING = 0x100
    #: The connection is closed: nothing more will come.
    CLOSED = 0x101
    #: The connection failed; `data` is the exception.
    ERROR = 0x102

    text = TEXT
    binary = BINARY
    ping = PING
    pong = PONG
    close = CLOSE
    closing = CLOSING
    closed = CLOSED
    error = ERROR


class WSCloseCode(IntEnum):
    """Close codes of RFC 6455 section 7.4.1 and the IANA registry (aiohttp's names)."""

    OK = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    ABNORMAL_CLOSURE = 1006
    INVALID_TEXT = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014


class WSMessage(NamedTuple):
    """One thing received: `type` (a `WSMsgType`), `data` (str for TEXT, bytes
    for BINARY, PING and PONG, the close code for CLOSE, the exception for
    ERROR, None otherwise) and `extra` (the close reason for CLOSE)."""

    type: WSMsgType
    data: Any
    extra: str | None

    def json(self, *, loads: Callable[[Any], Any] = json.loads) -> Any:
        """`data` parsed as JSON."""
        return loads(self.data)


# Made without NamedTuple's generated __new__ (a Python-level call per message).
_new_message = tuple.__new__


def message(kind: WSMsgType, data: Any, extra: str | None = None) -> WSMessage:
    """A `WSMessage`, made the fast way."""
    return _new_message(WSMessage, (kind, data, extra))


class WebSocketError(Exception):
    """The connection broke a rule of the protocol, or a limit; `code` is the
    close code it earns (1002 protocol error, 1007 invalid text, 1009 too
    big...)."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(code, message)

    def __str__(self) -> str:
        return str(self.args[1])


def close_code_error(code: int) -> str | None:
    """Why `code` may not appear in a close frame (RFC 6455 7.4), or None if it
    may: 1000-1003 and 1007-1014 (RFC 6455 and IANA's registry) and
    3000-4999 (libraries and applications). 1004 is reserved; 1005, 1006 and
    1015 are for reporting only, never sent; the rest of 1000-2999 is
    reserved for future RFCs; 5000 and up are undefined."""
    if 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999:
        return None
    if code in (1005, 1006, 1015):
        return f"close code {code} is for reporting only and may not be sent"
    return f"close code {code} is reserved or undefined"


# -- masking ------------------------------------------------------------------

_from_bytes = int.from_bytes


def python_mask(data: bytes | bytearray | memoryview, key: bytes) -> bytes:
    """`data` XOR the 4-byte `key` repeated (RFC 6455 5.3): masks and unmasks.

    One XOR of two big integers: linear, and done in C by the interpreter.
    The reference for the optional C version; every test runs both."""
    n = len(data)
    if n == 0:
        return b""
    repeated = key * ((n >> 2) + 1)
    if len(repeated) != n:
        repeated = repeated[:n]
    return (_from_bytes(data, "little") ^ _from_bytes(repeated, "little")).to_bytes(n, "little")


c_mask: Callable[[bytes | bytearray | memoryview, bytes], bytes] | None
try:
    from ._speedups import mask as c_mask
except ImportError:  # not built (no C compiler at install): pure Python
    c_mask = None

mask: Callable[[bytes | bytearray | memoryview, bytes], bytes] = python_mask
"""The masking in use: the C version when it was built, unless
TREADLE_NO_EXTENSIONS=1 was set at start-up (the operator's off switch)."""
if c_mask is not None and not os.environ.get("TREADLE_NO_EXTENSIONS"):
    mask = c_mask


class _KeySource:
    """Masking keys for a client's frames, from the operating system's CSPRNG
    (RFC 6455 10.3: keys must be unpredictable), taken 4 bytes at a time from
    a buffer refilled in one `os.urandom` call rather than a system call per
    frame."""

    __slots__ = ("_buf", "_pos")

    _SIZE = 4096

    def __init__(self) -> None:
        self._buf = b""
        self._pos = self._SIZE

    def __call__(self) -> bytes:
        pos = self._pos
        if pos >= self._SIZE:
            self._buf = os.urandom(self._SIZE)
            pos = 0
        self._pos = pos + 4
        return self._buf[pos : pos + 4]


mask_key = _KeySource()
"""A fresh 4-byte masking key (from `os.urandom`)."""

if hasattr(os, "register_at_fork"):
    # A forked worker must not reuse the keys its parent has buffered.
    os.register_at_fork(after_in_child=lambda: setattr(mask_key, "_pos", _KeySource._SIZE))


# -- encoding -----------------------------------------------------------------

_pack_16 = struct.Struct("!BBH").pack
_pack_64 = struct.Struct("!BBQ").pack


def encode_frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False, masked: bool = False
) -> bytes:
    """One frame, ready for the wire. `masked` (a client's frames) masks the
    payload with a fresh key. The length takes the shortest form (5.2)."""
    first = opcode | (FIN if fin else 0) | (RSV1 if rsv1 else 0)
    n = len(payload)
    if not masked:
        if n < 126:
            return bytes((first, n)) + payload
        if n < 65536:
            return _pack_16(first, 126, n) + payload
        return _pack_64(first, 127, n) + payload
    key = mask_key()
    if n < 126:
        head = bytes((first, MASK_BIT | n))
    elif n < 65536:
        head = _pack_16(first, MASK_BIT | 126, n)
    else:
        head = _pack_64(first, MASK_BIT | 127, n)
    return head + key + mask(payload, key)
