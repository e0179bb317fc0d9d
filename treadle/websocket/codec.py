"""The WebSocket codec: bytes in, messages out; messages in, bytes out. Sans-IO.

One class for both roles, the role a parameter (websockets' design): a
server expects masked frames and sends unmasked ones, a client the other way
round. The asyncio connection (`connection.py`) and every front end above it
(`web.WebSocketResponse`, the client's `ws_connect`, the ASGI `websocket`
scope) share this one implementation of the rules.

Receiving: `feed(data)` takes whatever a read returned and gives back the
complete messages it finished, as `WSMessage`s: TEXT (str), BINARY (bytes),
PING, PONG, CLOSE (code, reason). A fragmented message is reassembled;
control frames between its fragments come out as they arrive. When the
peer breaks a rule, the last item is an ERROR message whose data is a
`WebSocketError` carrying the close code it earns, and the codec takes no
more input: the connection must be failed (RFC 6455 7.1.7).

Strict, because a WebSocket parser is attack surface. Each rule is judged as
early as the bytes allow, most of them from the frame header alone, before
any payload is buffered:

- a server refuses unmasked frames and a client masked ones (1002);
- RSV1 only on the first frame of a data message, and only when
  permessage-deflate was negotiated; RSV2 and RSV3 never (1002);
- opcodes 3-7 and 11-15 (1002);
- control frames must be whole (FIN) and at most 125 bytes (1002);
- a continuation with no message begun, or a new data frame inside a
  fragmented one (1002);
- a 64-bit length with its top bit set (1002);
- a message over `max_msg_size` (1009), from the header for an uncompressed
  frame; a compressed one is measured as it inflates and is never inflated
  past the limit (websockets' CVE-2018-1000518; aiohttp's 3.13-3.14 fixes);
- text that is not UTF-8 (1007), checked frame by frame across fragments;
  a close frame's reason likewise;
- a close frame of one byte, or with a code that may not be sent
  (1005, 1006, 1015, below 1000, 1004, 1016-2999, 5000 and up) (1002).

Lengths in a longer form than needed (a 3-byte payload announced in 16
bits) are accepted: RFC 6455 makes the shortest form a duty of the sender,
and accepting the longer form frames the bytes no differently.

Sending: `encode_text()`, `encode_binary()`, `encode_ping()`,
`encode_pong()`, `encode_close()` give the bytes of one frame, masked for a
client, compressed when permessage-deflate was negotiated.
"""

from __future__ import annotations

import codecs
import zlib
from typing import Final

from .deflate import DeflateParams, Deflater, Inflater, MessageTooBig
from .frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    WebSocketError,
    WSMessage,
    WSMsgType,
    close_code_error,
    encode_frame,
    mask,
    message,
)

__all__ = ["DEFAULT_MAX_MSG_SIZE", "Codec"]

DEFAULT_MAX_MSG_SIZE: Final = 4 * 1024 * 1024
"""aiohttp's default: 4 MiB."""

_TEXT: Final = WSMsgType.TEXT
_BINARY: Final = WSMsgType.BINARY
_PING: Final = WSMsgType.PING
_PONG: Final = WSMsgType.PONG
_CLOSE: Final = WSMsgType.CLOSE
_ERROR: Final = WSMsgType.ERROR

_PROTOCOL_ERROR: Final = 1002
_INVALID_TEXT: Final = 1007
_TOO_BIG: Final = 1009
_NO_STATUS: Final = 1005

_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


class Codec:
    """The protocol state of one WebSocket connection, in one role.

    `client=True` for the client's side. `max_msg_size` bounds a received
    message (after decompression); 0 means no bound. `deflate` is what the
    handshake agreed for permessage-deflate, or None.
    """

    __slots__ = (
        "_buf",
        "_client",
        "_closed",
        "_compressed_limit",
        "_decoder",
        "_deflater",
        "_fast",
        "_frame",
        "_frame_parts",
        "_inflater",
        "_mask_bit",
        "_max",
        "_msg_compressed",
        "_msg_op",
        "_msg_parts",
        "_msg_size",
        "_need",
        "_small_head",
        "close_received",
        "close_sent",
    )

    def __init__(
        self,
        *,
        client: bool = False,
        max_msg_size: int = DEFAULT_MAX_MSG_SIZE,
        deflate: DeflateParams | None = None,
    ) -> None:
        """A codec for one connection, just after the opening handshake."""
        if max_msg_size < 0:
            raise ValueError(f"max_msg_size must be 0 (no limit) or more, got {max_msg_size}")
        self._client = client
        self._max = max_msg_size
        # What a small frame from the peer looks like (see feed()'s short path).
        self._mask_bit = 0 if client else 0x80
        self._small_head = 2 if client else 6
        self._fast = True  # the short path is on (the tests turn it off to compare)
        # A compressed frame is buffered before it is inflated: bound it too,
        # with room for the few bytes deflate adds to data it cannot shrink.
        self._compressed_limit = max_msg_size + (max_msg_size >> 8) + 1024 if max_msg_size else 0
        self._deflater = Deflater(deflate) if deflate is not None else None
        self._inflater = Inflater(deflate) if deflate is not None else None
        self._buf = b""
        # A frame whose payload is still arriving: its header (first byte,
        # masking key) and the payload parts so far; _need bytes are missing.
        self._frame: tuple[int, bytes] = (0, b"")
        self._frame_parts: list[bytes] = []
        self._need = 0
        # The fragmented message being reassembled (_msg_op 0 when none).
        self._msg_op = 0
        self._msg_compressed = False
        self._msg_parts: list[bytes] | list[str] = []
        self._msg_size = 0
        self._decoder: codecs.IncrementalDecoder | None = None
        self._closed = False  # no more input: closed or failed
        #: Whether the peer's close frame has been received.
        self.close_received = False
        #: Whether our close frame has been encoded.
        self.close_sent = False

    @property
    def compressing(self) -> bool:
        """Whether permessage-deflate was negotiated."""
        return self._deflater is not None

    # -- receiving ---------------------------------------------------------------

    def feed(self, data: bytes) -> list[WSMessage]:
        """The messages completed by `data` (see the module docstring); the
        last is an ERROR message if the peer broke a rule."""
        # The common read: exactly one whole, small, plain message in one
        # frame (FIN, text or binary, no RSV bit, the 7-bit length, masked as
        # the role expects, within max_msg_size, no fragmented message under
        # way). It only takes what the general path below would accept with
        # the same result, and leaves everything else to it, text that is not
        # UTF-8 included (the tests compare the two on every single frame).
        if (
            self._fast
            and not self._buf
            and not self._need
            and not self._msg_op
            and not self._closed
        ):
            n = len(data)
            if n >= 2:
                first = data[0]
                length = data[1] ^ self._mask_bit  # >= 128 if the mask bit is wrong
                head = self._small_head
                if (
                    length < 126
                    and n == length + head
                    and (first == 0x81 or first == 0x82)
                    and (length <= self._max or not self._max)
                ):
                    payload = mask(data[6:], data[2:6]) if head == 6 else data[2:]
                    if first == 0x82:
                        return [message(_BINARY, payload)]
                    try:
                        return [message(_TEXT, payload.decode("utf-8"))]
                    except UnicodeDecodeError:
                        pass  # the general path fails it, with 1007
        out: list[WSMessage] = []
        if self._closed:
            return out
        try:
            if self._need:
                rest = self._continue_frame(data, out)
                if rest is None:
                    return out
                data = rest
            buf = self._buf + data if self._buf else data
            self._buf = b""
            self._frames(buf, out)
        except WebSocketError as exc:
            self._fail(exc, out)
        return out

    def _fail(self, exc: WebSocketError, out: list[WSMessage]) -> None:
        self._closed = True
        self._buf = b""
        self._frame_parts = []
        self._msg_parts = []
        out.append(message(_ERROR, exc))

    def _frames(self, buf: bytes, out: list[WSMessage]) -> None:
        """Parse every frame in `buf`; keep a partial one for later."""
        pos = 0
        end = len(buf)
        want_mask = 0 if self._client else 0x80
        while end - pos >= 2:
            first = buf[pos]
            second = buf[pos + 1]
            length = second & 0x7F
            start = pos + 2
            if length == 126:
                if end - start < 2:
                    break
                length = int.from_bytes(buf[start : start + 2], "big")
                start += 2
            elif length == 127:
                if end - start < 8:
                    break
                length = int.from_bytes(buf[start : start + 8], "big")
                if length >> 63:
                    raise WebSocketError(_PROTOCOL_ERROR, "the 64-bit length has its top bit set")
                start += 8
            if second & 0x80 != want_mask:
                raise WebSocketError(
                    _PROTOCOL_ERROR,
                    "a client sent an unmasked frame"
                    if want_mask
                    else "a server sent a masked frame",
                )
            # Judged before the key and the payload are waited for.
            self._check_header(first, length)
            if want_mask:
                if end - start < 4:
                    break
                key = buf[start : start + 4]
                start += 4
            else:
                key = b""
            stop = start + length
            if stop > end:
                # The payload is still arriving: collect it in parts rather
                # than re-joining a growing buffer on every read.
                self._frame = (first, key)
                self._frame_parts = [buf[start:]]
                self._need = stop - end
                return
            payload = buf[start:stop]
            if key:
                payload = mask(payload, key)
            pos = stop
            self._on_frame(first, payload, out)
            if self._closed:
                return
        if pos < end:
            self._buf = buf[pos:]

    def _continue_frame(self, data: bytes, out: list[WSMessage]) -> bytes | None:
        """Add `data` to the frame in progress; the bytes past it are returned
        (None if the frame ended the input: a close frame)."""
        need = self._need
        if len(data) < need:
            self._frame_parts.append(data)
            self._need = need - len(data)
            return b""
        self._frame_parts.append(data[:need])
        self._need = 0
        payload = b"".join(self._frame_parts)
        self._frame_parts = []
        first, key = self._frame
        if key:
            payload = mask(payload, key)
        self._on_frame(first, payload, out)
        return None if self._closed else data[need:]

    def _check_header(self, first: int, length: int) -> None:
        """The rules a frame header alone decides; raises WebSocketError."""
        opcode = first & 0x0F
        if first & 0x70:
            if first & 0x30:
                raise WebSocketError(_PROTOCOL_ERROR, "RSV2 or RSV3 set: no extension defines them")
            if self._inflater is None:
                raise WebSocketError(_PROTOCOL_ERROR, "RSV1 set without permessage-deflate")
            if opcode not in (OP_TEXT, OP_BINARY):
                raise WebSocketError(
                    _PROTOCOL_ERROR, "RSV1 set on a frame other than a message's first"
                )
        if opcode >= 8:
            if opcode > OP_PONG:
                raise WebSocketError(_PROTOCOL_ERROR, f"unknown opcode {opcode}")
            if not first & 0x80:
                raise WebSocketError(_PROTOCOL_ERROR, "a fragmented control frame")
            if length > 125:
                raise WebSocketError(_PROTOCOL_ERROR, "a control frame over 125 bytes")
            return
        if opcode == 0:
            if not self._msg_op:
                raise WebSocketError(_PROTOCOL_ERROR, "a continuation frame with no message begun")
            compressed = self._msg_compressed
            size = self._msg_size
        elif opcode <= OP_BINARY:
            if self._msg_op:
                raise WebSocketError(_PROTOCOL_ERROR, "a new message began inside a fragmented one")
            compressed = bool(first & 0x40)
            size = 0
        else:
            raise WebSocketError(_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if self._max:
            if compressed:
                if length > self._compressed_limit:
                    raise WebSocketError(
                        _TOO_BIG, f"a compressed frame of {length} bytes (limit {self._max})"
                    )
            elif size + length > self._max:
                raise WebSocketError(
                    _TOO_BIG, f"a message of more than {self._max} bytes ({size + length})"
                )

    def _on_frame(self, first: int, payload: bytes, out: list[WSMessage]) -> None:
        """A whole frame has arrived (header already checked)."""
        opcode = first & 0x0F
        fin = first & 0x80
        if opcode >= 8:
            if opcode == OP_PING:
                out.append(message(_PING, payload))
            elif opcode == OP_PONG:
                out.append(message(_PONG, payload))
            else:
                out.append(self._close_frame(payload))
            return
        if opcode:  # the first frame of a message
            compressed = bool(first & 0x40)
            if fin and not compressed:  # the common case: a whole, plain message
                if opcode == OP_TEXT:
                    try:
                        out.append(message(_TEXT, payload.decode("utf-8")))
                    except UnicodeDecodeError:
                        raise WebSocketError(_INVALID_TEXT, "text is not valid UTF-8") from None
                else:
                    out.append(message(_BINARY, payload))
                return
            self._msg_op = opcode
            self._msg_compressed = compressed
            self._msg_size = 0
            self._msg_parts = []
            self._decoder = _Utf8Decoder() if opcode == OP_TEXT else None
        if self._msg_compressed:
            assert self._inflater is not None
            limit = self._max - self._msg_size if self._max else 0
            try:
                payload = self._inflater.inflate(payload, bool(fin), limit)
            except MessageTooBig as exc:
                raise WebSocketError(_TOO_BIG, str(exc)) from None
            except zlib.error as exc:
                raise WebSocketError(_PROTOCOL_ERROR, f"bad compressed data: {exc}") from None
        self._msg_size += len(payload)
        decoder = self._decoder
        if decoder is not None:
            try:
                text = decoder.decode(payload, bool(fin))
            except UnicodeDecodeError:
                raise WebSocketError(_INVALID_TEXT, "text is not valid UTF-8") from None
            self._msg_parts.append(text)  # type: ignore[arg-type]
        else:
            self._msg_parts.append(payload)  # type: ignore[arg-type]
        if fin:
            parts = self._msg_parts
            self._msg_parts = []
            self._msg_op = 0
            if decoder is not None:
                self._decoder = None
                out.append(message(_TEXT, "".join(parts)))  # type: ignore[arg-type]
            else:
                out.append(message(_BINARY, b"".join(parts)))  # type: ignore[arg-type]

    def _close_frame(self, payload: bytes) -> WSMessage:
        """The peer's close frame: its code and reason, checked."""
        if not payload:
            code, reason = _NO_STATUS, ""
        elif len(payload) == 1:
            raise WebSocketError(_PROTOCOL_ERROR, "a close frame of one byte")
        else:
            code = int.from_bytes(payload[:2], "big")
            problem = close_code_error(code)
            if problem is not None:
                raise WebSocketError(_PROTOCOL_ERROR, problem)
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise WebSocketError(_INVALID_TEXT, "the close reason is not valid UTF-8") from None
        self.close_received = True
        self._closed = True  # nothing may follow a close frame (RFC 6455 5.5.1)
        return message(_CLOSE, code, reason)

    # -- sending -----------------------------------------------------------------

    def encode_text(self, text: str, compress: bool | None = None) -> bytes:
        """A text message as one frame."""
        return self.encode_message(OP_TEXT, text.encode("utf-8"), compress)

    def encode_binary(self, data: bytes, compress: bool | None = None) -> bytes:
        """A binary message as one frame."""
        return self.encode_message(OP_BINARY, data, compress)

    def encode_message(self, opcode: int, data: bytes, compress: bool | None = None) -> bytes:
        """A data message as one frame; compressed when permessage-deflate was
        negotiated, unless `compress` is False."""
        if self.close_sent:
            raise RuntimeError("cannot send a message after the close frame")
        deflater = self._deflater
        if deflater is not None and compress is not False:
            return encode_frame(opcode, deflater.compress(data), rsv1=True, masked=self._client)
        if self._client:
            return encode_frame(opcode, data, masked=True)
        # A server's small frame, the common case, made in one step.
        n = len(data)
        if n < 126:
            return bytes((0x80 | opcode, n)) + data
        return encode_frame(opcode, data)

    def encode_ping(self, payload: bytes = b"") -> bytes:
        """A ping frame (at most 125 bytes of payload)."""
        return self._control(OP_PING, payload)

    def encode_pong(self, payload: bytes = b"") -> bytes:
        """A pong frame (at most 125 bytes of payload)."""
        return self._control(OP_PONG, payload)

    def _control(self, opcode: int, payload: bytes) -> bytes:
        if len(payload) > 125:
            raise ValueError(f"a control frame's payload is at most 125 bytes, got {len(payload)}")
        if self.close_sent:
            raise RuntimeError("cannot send a control frame after the close frame")
        return encode_frame(opcode, payload, masked=self._client)

    def encode_close(self, code: int | None = 1000, reason: str | bytes = "") -> bytes:
        """The close frame; `code` None sends none (then no reason either).
        Raises ValueError for a code that may not be sent or a reason over
        123 bytes of UTF-8."""
        if self.close_sent:
            raise RuntimeError("the close frame was already sent")
        if code is None:
            if reason:
                raise ValueError("a close reason needs a close code")
            payload = b""
        else:
            problem = close_code_error(code)
            if problem is not None:
                raise ValueError(problem)
            raw = reason.encode("utf-8") if isinstance(reason, str) else bytes(reason)
            if len(raw) > 123:
                raise ValueError(f"a close reason is at most 123 bytes of UTF-8, got {len(raw)}")
            if isinstance(reason, bytes):
                raw.decode("utf-8")  # a bytes reason must be UTF-8 too
            payload = code.to_bytes(2, "big") + raw
        self.close_sent = True
        return encode_frame(OP_CLOSE, payload, masked=self._client)
