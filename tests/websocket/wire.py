"""Frames built by hand for the tests, independently of the codec's encoder:
a per-byte XOR for masking and explicit length forms, so the codec is never
checked against itself."""

from __future__ import annotations

import struct


def xor(data: bytes, key: bytes) -> bytes:
    """The RFC's masking, byte by byte: the reference."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    key: bytes | None = None,
    form: int | None = None,
) -> bytes:
    """One frame: `rsv` is the RSV bits as 1/2/4 (RSV1/RSV2/RSV3), `key` a
    masking key (None: unmasked), `form` forces a length form (7, 16 or 64
    bits) instead of the shortest."""
    bits = (0x40 if rsv & 1 else 0) | (0x20 if rsv & 2 else 0) | (0x10 if rsv & 4 else 0)
    first = (0x80 if fin else 0) | bits | opcode
    n = len(payload)
    if form is None:
        form = 7 if n < 126 else 16 if n < 65536 else 64
    mask_bit = 0x80 if key is not None else 0
    if form == 7:
        head = bytes((first, mask_bit | n))
    elif form == 16:
        head = bytes((first, mask_bit | 126)) + struct.pack("!H", n)
    else:
        head = bytes((first, mask_bit | 127)) + struct.pack("!Q", n)
    if key is None:
        return head + payload
    return head + key + xor(payload, key)


KEY = b"\x37\xfa\x21\x3d"


def client_frame(opcode: int, payload: bytes = b"", **kwargs: object) -> bytes:
    """A frame as a client sends it: masked."""
    return frame(opcode, payload, key=KEY, **kwargs)  # type: ignore[arg-type]


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def unframe(data: bytes) -> list[tuple[int, int, bytes]]:
    """Frames in `data` as (first byte, opcode, unmasked payload): the
    reference decoder for what the codec encodes."""
    out = []
    pos = 0
    while pos < len(data):
        first, second = data[pos], data[pos + 1]
        n = second & 0x7F
        pos += 2
        if n == 126:
            (n,) = struct.unpack("!H", data[pos : pos + 2])
            pos += 2
        elif n == 127:
            (n,) = struct.unpack("!Q", data[pos : pos + 8])
            pos += 8
        key = None
        if second & 0x80:
            key = data[pos : pos + 4]
            pos += 4
        payload = data[pos : pos + n]
        pos += n
        if key is not None:
            payload = xor(payload, key)
        out.append((first, first & 0x0F, payload))
    return out
