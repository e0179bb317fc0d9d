"""permessage-deflate (RFC 7692): negotiation and the per-message compressors.

Sans-IO like the rest of the codec. Three parts:

- **The `Sec-WebSocket-Extensions` grammar** (RFC 6455 9.1): `parse_extensions`
  turns the header's values into `(name, [(param, value-or-None), ...])`
  offers, or raises `ValueError` for a malformed header (the handshake
  answers 400: a header nobody can read is the client's error, not an offer
  to ignore).
- **Negotiation**, for both roles. The server accepts the first offer it can
  honour (`server_negotiate`); an offer with an unknown or repeated
  parameter, or a bad value, is declined, not an error. The client offers
  `permessage-deflate; client_max_window_bits` (`CLIENT_OFFER`) and checks
  the answer (`client_accept`): anything the RFC does not let a server
  answer fails the handshake.
- **`Deflater` / `Inflater`**, one per direction. The inflater takes a limit
  and never produces more than it: `zlib`'s `max_length` bounds each call,
  so a frame of a few bytes that would expand to gigabytes costs at most
  the limit (plus one byte to know it was passed) before the connection is
  failed with 1009 (websockets' CVE-2018-1000518 was this bomb).

zlib cannot compress with an 8-bit window in raw-deflate mode (it silently
uses 9, and a peer holding only 256 bytes of history would then misread the
stream), so an offer that asks our side to use 8 is declined, and a server
that asks our client to use 8 fails the handshake. Inflating always uses a
window of at least 9 bits, which reads anything a smaller window wrote.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CLIENT_OFFER",
    "DeflateParams",
    "Deflater",
    "Inflater",
    "MessageTooBig",
    "client_accept",
    "parse_extensions",
    "server_negotiate",
]

NAME: Final = "permessage-deflate"
#: What a client offers: compression both ways, and our willingness to hear
#: a limit on the window we compress with.
CLIENT_OFFER: Final = "permessage-deflate; client_max_window_bits"
_TAIL: Final = b"\x00\x00\xff\xff"

Params = list[tuple[str, str | None]]

# RFC 6455 9.1 with RFC 9110's token and quoted-string; OWS around separators.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[\t !#-\[\]-~]|\\[\t -~])*"'
_PARAM = re.compile(rf"[ \t]*;[ \t]*({_TOKEN})(?:[ \t]*=[ \t]*({_TOKEN}|{_QUOTED}))?")
_EXT = re.compile(rf"[ \t]*({_TOKEN})")
_COMMA = re.compile(r"[ \t]*,")
_WINDOW_BITS = re.compile(r"[89]|1[0-5]")


def parse_extensions(values: list[str]) -> list[tuple[str, Params]]:
    """The extension offers in the values of `Sec-WebSocket-Extensions`
    fields, in order; parameter values unquoted. Raises `ValueError` if a
    value does not follow the grammar. Names are kept as sent (extension
    names compare case-sensitively, as tokens registered with IANA)."""
    offers: list[tuple[str, Params]] = []
    for value in values:
        pos, end = 0, len(value)
        expect_ext = True
        while True:
            # Empty list elements (", ,") are allowed and ignored (RFC 9110 5.6.1).
            match = _COMMA.match(value, pos)
            if match is not None:
                pos = match.end()
                expect_ext = True
                continue
            if value[pos:].strip(" \t") == "":
                break
            if not expect_ext:
                raise ValueError(f"expected ',' at {pos} in {value!r}")
            match = _EXT.match(value, pos)
            if match is None:
                raise ValueError(f"expected an extension name at {pos} in {value!r}")
            name = match.group(1)
            pos = match.end()
            params: Params = []
            while (match := _PARAM.match(value, pos)) is not None:
                raw = match.group(2)
                if raw is not None and raw.startswith('"'):
                    raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
                params.append((match.group(1), raw))
                pos = match.end()
            offers.append((name, params))
            expect_ext = False
            if pos >= end:
                break
    return offers


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """What was agreed for one connection, from one side's point of view.

    - `local_no_context_takeover`: we reset our compressor after each message.
    - `remote_no_context_takeover`: the peer resets its own (so our inflater
      can be dropped between messages, saving its memory).
    - `local_max_window_bits`: the window our compressor uses (9-15).
    """

    local_no_context_takeover: bool = False
    remote_no_context_takeover: bool = False
    local_max_window_bits: int = 15


class _Offer:
    """The four parameters of one permessage-deflate offer or answer."""

    __slots__ = ("client_bits", "client_no_takeover", "server_bits", "server_no_takeover")

    def __init__(self, params: Params, *, answer: bool) -> None:
        """Raises ValueError for an unknown or repeated parameter or a bad value."""
        seen: set[str] = set()
        self.server_no_takeover = False
        self.client_no_takeover = False
        self.server_bits: int | None = None
        # True: "client_max_window_bits" without a value (only in an offer).
        self.client_bits: int | bool | None = None
        for name, value in params:
            if name in seen:
                raise ValueError(f"{name} given twice")
            seen.add(name)
            if name in ("server_no_context_takeover", "client_no_context_takeover"):
                if value is not None:
                    raise ValueError(f"{name} takes no value")
                if name[0] == "s":
                    self.server_no_takeover = True
                else:
                    self.client_no_takeover = True
            elif name == "server_max_window_bits":
                self.server_bits = _window_bits(name, value)
            elif name == "client_max_window_bits":
                if value is None and not answer:
                    self.client_bits = True
                else:
                    self.client_bits = _window_bits(name, value)
            else:
                raise ValueError(f"unknown parameter {name}")


def _window_bits(name: str, value: str | None) -> int:
    # 8-15 in plain digits: "08" or "+9" is not one (RFC 7692 7.1.2).
    if value is None or _WINDOW_BITS.fullmatch(value) is None:
        raise ValueError(f"{name} must be 8-15, got {value!r}")
    return int(value)


def server_negotiate(
    offers: list[tuple[str, Params]], *, no_context_takeover: bool = False
) -> tuple[str, DeflateParams] | None:
    """Accept the first permessage-deflate offer we can honour: the
    `Sec-WebSocket-Extensions` value to answer with and the parameters, or
    None to go without compression. `no_context_takeover` makes our side
    reset its compressor after every message even if not asked (less memory
    held between messages, a worse ratio)."""
    for name, params in offers:
        if name != NAME:
            continue
        try:
            offer = _Offer(params, answer=False)
        except ValueError:
            continue  # an offer we cannot read is declined, as RFC 7692 5 allows
        if offer.server_bits == 8:
            continue  # zlib cannot compress within a 256-byte window
        answer = [NAME]
        local_reset = offer.server_no_takeover or no_context_takeover
        if local_reset:
            answer.append("server_no_context_takeover")
        if offer.client_no_takeover:
            answer.append("client_no_context_takeover")
        bits = 15
        if offer.server_bits is not None:
            bits = offer.server_bits
            answer.append(f"server_max_window_bits={bits}")
        params_out = DeflateParams(
            local_no_context_takeover=local_reset,
            remote_no_context_takeover=offer.client_no_takeover,
            local_max_window_bits=bits,
        )
        return "; ".join(answer), params_out
    return None


def client_accept(values: list[str]) -> DeflateParams | None:
    """The parameters a server's `Sec-WebSocket-Extensions` answer (to
    `CLIENT_OFFER`) agrees, or None if it accepted no extension. Raises
    `ValueError` for an answer the offer does not allow: another extension,
    permessage-deflate twice, an unknown or repeated parameter, a bad value,
    or a window of 8 bits for us (see the module docstring)."""
    answers = parse_extensions(values)
    if not answers:
        return None
    if len(answers) > 1:
        raise ValueError("the server accepted more than one extension")
    name, params = answers[0]
    if name != NAME:
        raise ValueError(f"the server accepted an extension that was not offered: {name}")
    answer = _Offer(params, answer=True)
    bits = 15
    if answer.client_bits is not None:  # a number: answers never hold the bare form
        if answer.client_bits == 8:
            raise ValueError("client_max_window_bits=8 is not supported (zlib needs 9)")
        bits = int(answer.client_bits)
    return DeflateParams(
        local_no_context_takeover=answer.client_no_takeover,
        remote_no_context_takeover=answer.server_no_takeover,
        local_max_window_bits=bits,
    )


class MessageTooBig(Exception):
    """A message inflated past the limit."""


class Deflater:
    """Compresses the messages we send (RFC 7692 7.2.1)."""

    __slots__ = ("_compressor", "_params")

    def __init__(self, params: DeflateParams) -> None:
        """A compressor for `params`' side of the connection."""
        self._params = params
        self._compressor: zlib._Compress | None = None

    def compress(self, data: bytes) -> bytes:
        """One message's payload, compressed, without the final empty block's
        `00 00 ff ff` (the receiver adds it back)."""
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self._params.local_max_window_bits
            )
        if self._params.local_no_context_takeover:
            # A full flush ends the message on a byte boundary and forgets the
            # history, so the next message refers to nothing before it.
            out = compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)
        else:
            out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        # Both flushes end in an empty stored block, 00 00 ff ff after its
        # header bits; the receiver appends it again (7.2.1). An empty message
        # so becomes the single byte 00.
        return out[:-4]


class Inflater:
    """Decompresses the messages we receive, never past a limit."""

    __slots__ = ("_decompressor", "_reset")

    def __init__(self, params: DeflateParams) -> None:
        """An inflater for the peer's side of the connection."""
        self._reset = params.remote_no_context_takeover
        self._decompressor: zlib._Decompress | None = None

    def inflate(self, data: bytes, end: bool, limit: int) -> bytes:
        """The bytes a frame's `data` inflates to; `end` on the message's last
        frame. Raises `MessageTooBig` once the output would pass `limit`
        bytes (0: no limit), having produced no more than `limit + 1`."""
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(-15)
        if end:
            data += _TAIL
        if limit:
            out = decompressor.decompress(data, limit + 1)
            if len(out) > limit:
                raise MessageTooBig(f"the message inflates past {limit} bytes")
        else:
            out = decompressor.decompress(data)
        if (end and self._reset) or decompressor.eof:
            # The peer forgets its history (or ended the stream with a final
            # block): the next message starts a new one, and so may we.
            self._decompressor = None
        return out
