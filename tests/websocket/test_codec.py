"""The WebSocket codec byte by byte: every rule of RFC 6455 it enforces, each
limit at and one past it, every split point of sample streams, masking both
ways, and the frames it encodes (read back by an independent decoder)."""

from __future__ import annotations

import struct
import tracemalloc
import zlib

import pytest

from treadle.websocket import frames as frames_module
from treadle.websocket.codec import Codec
from treadle.websocket.deflate import DeflateParams
from treadle.websocket.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    WebSocketError,
    WSMessage,
    WSMsgType,
    close_code_error,
    python_mask,
)

from .wire import KEY, client_frame, close_payload, frame, unframe, xor

TEXT, BINARY, PING, PONG, CLOSE, ERROR = (
    WSMsgType.TEXT,
    WSMsgType.BINARY,
    WSMsgType.PING,
    WSMsgType.PONG,
    WSMsgType.CLOSE,
    WSMsgType.ERROR,
)

pytestmark = pytest.mark.usefixtures("mask_impl")


def decoded(messages: list[WSMessage]) -> list[tuple[WSMsgType, object, object]]:
    return [(m.type, m.data, m.extra) for m in messages]


def error_code(messages: list[WSMessage]) -> int:
    """The close code of the ERROR message that ends `messages`."""
    assert messages, "expected an ERROR message, got nothing"
    last = messages[-1]
    assert last.type is ERROR, f"expected an ERROR message, got {messages}"
    assert isinstance(last.data, WebSocketError)
    return last.data.code


def server(**kwargs: object) -> Codec:
    return Codec(client=False, **kwargs)  # type: ignore[arg-type]


def client(**kwargs: object) -> Codec:
    return Codec(client=True, **kwargs)  # type: ignore[arg-type]


# -- decoding what is valid ----------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_every_length_form_in_both_roles(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    assert decoded(server().feed(client_frame(OP_BINARY, payload))) == [(BINARY, payload, None)]
    assert decoded(client().feed(frame(OP_BINARY, payload))) == [(BINARY, payload, None)]


@pytest.mark.parametrize("form", [16, 64])
def test_a_longer_length_form_than_needed_is_accepted(form: int) -> None:
    msgs = server().feed(client_frame(OP_TEXT, b"abc", form=form))
    assert decoded(msgs) == [(TEXT, "abc", None)]


def sample_stream() -> tuple[bytes, list[tuple[WSMsgType, object, object]]]:
    """A client's stream exercising everything: a whole text, a fragmented
    text whose UTF-8 splits across fragments with a ping and a pong between
    them, a fragmented binary with an empty fragment, an empty text, a close."""
    text = "héllo wörld ☃ 𝄞".encode()
    stream = b"".join(
        [
            client_frame(OP_TEXT, b"first"),
            client_frame(OP_TEXT, text[:2], fin=False),  # splits the é
            client_frame(OP_PING, b"ping!"),
            client_frame(OP_CONTINUATION, text[2:13], fin=False),
            client_frame(OP_PONG, b""),
            client_frame(OP_CONTINUATION, text[13:]),
            client_frame(OP_BINARY, b"\x00\x01", fin=False),
            client_frame(OP_CONTINUATION, b"", fin=False),
            client_frame(OP_CONTINUATION, b"\xff" * 300),
            client_frame(OP_TEXT, b""),
            client_frame(OP_CLOSE, close_payload(1000, "bye ✓".encode())),
        ]
    )
    expected = [
        (TEXT, "first", None),
        (PING, b"ping!", None),
        (PONG, b"", None),
        (TEXT, text.decode(), None),
        (BINARY, b"\x00\x01" + b"\xff" * 300, None),
        (TEXT, "", None),
        (CLOSE, 1000, "bye ✓"),
    ]
    return stream, expected


def test_a_sample_stream_whole_and_byte_by_byte() -> None:
    stream, expected = sample_stream()
    assert decoded(server().feed(stream)) == expected
    codec = server()
    got: list[WSMessage] = []
    for i in range(len(stream)):
        got.extend(codec.feed(stream[i : i + 1]))
    assert decoded(got) == expected


def test_the_sample_stream_split_at_every_point_into_two_and_three() -> None:
    stream, expected = sample_stream()
    n = len(stream)
    for i in range(n + 1):
        codec = server()
        got = codec.feed(stream[:i]) + codec.feed(stream[i:])
        assert decoded(got) == expected, i
    for i in range(0, n + 1, 7):
        for j in range(i, n + 1, 5):
            codec = server()
            got = codec.feed(stream[:i]) + codec.feed(stream[i:j]) + codec.feed(stream[j:])
            assert decoded(got) == expected, (i, j)


def test_nothing_is_read_after_a_close_frame() -> None:
    codec = server()
    msgs = codec.feed(client_frame(OP_CLOSE, close_payload(1001)) + client_frame(OP_TEXT, b"after"))
    assert decoded(msgs) == [(CLOSE, 1001, "")]
    assert codec.close_received
    assert codec.feed(client_frame(OP_TEXT, b"more")) == []


def test_an_empty_close_frame_reports_1005() -> None:
    assert decoded(server().feed(client_frame(OP_CLOSE))) == [(CLOSE, 1005, "")]


def test_a_control_frame_of_125_bytes_is_fine() -> None:
    assert decoded(server().feed(client_frame(OP_PING, b"p" * 125))) == [(PING, b"p" * 125, None)]


# -- the rules: each violation, and the close code it earns --------------------------------


def test_a_server_refuses_unmasked_frames() -> None:
    assert error_code(server().feed(frame(OP_TEXT, b"hi"))) == 1002


def test_a_client_refuses_masked_frames() -> None:
    assert error_code(client().feed(frame(OP_TEXT, b"hi", key=KEY))) == 1002


@pytest.mark.parametrize("rsv", [1, 2, 4, 3, 7])
def test_reserved_bits_without_an_extension(rsv: int) -> None:
    assert error_code(server().feed(client_frame(OP_TEXT, b"hi", rsv=rsv))) == 1002


DEFLATE = DeflateParams()


@pytest.mark.parametrize("rsv", [2, 4])
def test_rsv2_and_rsv3_even_with_deflate(rsv: int) -> None:
    assert error_code(server(deflate=DEFLATE).feed(client_frame(OP_TEXT, b"hi", rsv=rsv))) == 1002


def test_rsv1_on_a_continuation_or_control_frame_with_deflate() -> None:
    codec = server(deflate=DEFLATE)
    first = client_frame(OP_TEXT, b"\x00", fin=False, rsv=1)
    assert error_code(codec.feed(first + client_frame(OP_CONTINUATION, b"x", rsv=1))) == 1002
    assert error_code(server(deflate=DEFLATE).feed(client_frame(OP_PING, b"", rsv=1))) == 1002


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
def test_unknown_opcodes(opcode: int) -> None:
    assert error_code(server().feed(client_frame(opcode, b""))) == 1002


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_control_frames_over_125_bytes_are_refused_from_the_header(opcode: int) -> None:
    whole = client_frame(opcode, close_payload(1000, b"x" * 124))
    assert len(whole) == 4 + 4 + 126  # a 16-bit length, the key, the payload
    # The header alone decides: neither the key nor the payload has to arrive.
    assert error_code(server().feed(whole[:4])) == 1002


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_fragmented_control_frames(opcode: int) -> None:
    assert error_code(server().feed(client_frame(opcode, b"", fin=False))) == 1002


def test_a_continuation_with_no_message_begun() -> None:
    assert error_code(server().feed(client_frame(OP_CONTINUATION, b"x"))) == 1002


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_a_new_message_inside_a_fragmented_one(opcode: int) -> None:
    stream = client_frame(OP_TEXT, b"a", fin=False) + client_frame(opcode, b"b")
    assert error_code(server().feed(stream)) == 1002


def test_a_64_bit_length_with_its_top_bit_set() -> None:
    head = bytes((0x82, 0x80 | 127)) + struct.pack("!Q", 1 << 63)
    assert error_code(server(max_msg_size=0).feed(head)) == 1002


@pytest.mark.parametrize(
    "payload",
    [b"\xff", b"\xc3", b"\xed\xa0\x80", b"caf\xc3\x28", b"\xf4\x90\x80\x80", b"\xc0\xaf"],
    ids=["ff", "truncated", "surrogate", "bad-continuation", "above-max", "overlong"],
)
def test_invalid_utf8_in_a_text_message(payload: bytes) -> None:
    assert error_code(server().feed(client_frame(OP_TEXT, payload))) == 1007


def test_invalid_utf8_fails_at_the_fragment_that_carries_it() -> None:
    codec = server()
    assert codec.feed(client_frame(OP_TEXT, b"fine", fin=False)) == []
    # The second fragment is bad: the connection fails now, not at the end.
    assert error_code(codec.feed(client_frame(OP_CONTINUATION, b"\xff", fin=False))) == 1007


def test_a_text_message_ending_inside_a_character() -> None:
    stream = client_frame(OP_TEXT, b"ok\xe2\x98", fin=False) + client_frame(OP_CONTINUATION, b"")
    assert error_code(server().feed(stream)) == 1007


def test_a_close_frame_of_one_byte() -> None:
    assert error_code(server().feed(client_frame(OP_CLOSE, b"\x03"))) == 1002


def test_a_close_reason_that_is_not_utf8() -> None:
    assert error_code(server().feed(client_frame(OP_CLOSE, close_payload(1000, b"\xff")))) == 1007


INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]


@pytest.mark.parametrize("code", INVALID_CODES)
def test_close_codes_that_may_not_be_sent_are_refused(code: int) -> None:
    assert close_code_error(code) is not None
    assert error_code(server().feed(client_frame(OP_CLOSE, close_payload(code)))) == 1002
    with pytest.raises(ValueError):
        server().encode_close(code)


@pytest.mark.parametrize("code", VALID_CODES)
def test_close_codes_that_may_be_sent(code: int) -> None:
    assert close_code_error(code) is None
    assert decoded(server().feed(client_frame(OP_CLOSE, close_payload(code)))) == [
        (CLOSE, code, "")
    ]


def test_after_an_error_the_codec_takes_nothing_more() -> None:
    codec = server()
    assert error_code(codec.feed(frame(OP_TEXT, b"unmasked"))) == 1002
    assert codec.feed(client_frame(OP_TEXT, b"fine")) == []


def test_messages_before_the_broken_frame_are_delivered_first() -> None:
    msgs = server().feed(client_frame(OP_TEXT, b"one") + client_frame(3, b""))
    assert [m.type for m in msgs] == [TEXT, ERROR]
    assert msgs[0].data == "one"


# -- the message-size limit ------------------------------------------------------------------


def test_one_frame_at_the_limit_and_one_past_it() -> None:
    assert decoded(server(max_msg_size=1000).feed(client_frame(OP_BINARY, b"x" * 1000))) == [
        (BINARY, b"x" * 1000, None)
    ]
    too_big = client_frame(OP_BINARY, b"x" * 1001)
    # Refused from the header, before the payload is buffered.
    assert error_code(server(max_msg_size=1000).feed(too_big[:4])) == 1009


def test_a_fragmented_message_at_the_limit_and_one_past_it() -> None:
    parts = [b"a" * 400, b"b" * 400, b"c" * 200]
    ok = b"".join(
        client_frame(OP_CONTINUATION if i else OP_BINARY, p, fin=i == 2)
        for i, p in enumerate(parts)
    )
    assert decoded(server(max_msg_size=1000).feed(ok)) == [(BINARY, b"".join(parts), None)]
    past = ok[: -len(client_frame(OP_CONTINUATION, parts[2]))] + client_frame(
        OP_CONTINUATION, b"c" * 201
    )
    assert error_code(server(max_msg_size=1000).feed(past)) == 1009


def test_max_msg_size_zero_means_no_limit() -> None:
    big = b"z" * (5 * 1024 * 1024)
    assert decoded(server(max_msg_size=0).feed(client_frame(OP_BINARY, big))) == [
        (BINARY, big, None)
    ]
    assert error_code(server().feed(client_frame(OP_BINARY, big)[:10])) == 1009  # 4 MiB default


def deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def test_a_compressed_message_at_the_limit_and_one_past_it() -> None:
    ok = client_frame(OP_BINARY, deflated(b"\x00" * 1000), rsv=1)
    assert decoded(server(max_msg_size=1000, deflate=DEFLATE).feed(ok)) == [
        (BINARY, b"\x00" * 1000, None)
    ]
    past = client_frame(OP_BINARY, deflated(b"\x00" * 1001), rsv=1)
    assert error_code(server(max_msg_size=1000, deflate=DEFLATE).feed(past)) == 1009


def test_a_compression_bomb_is_refused_without_inflating_it() -> None:
    # 256 MiB of zeros deflates to about 256 KB, well under the limit of
    # 1 MiB, so it is the inflating that must stop it.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b"\x00" * (1 << 20)
    bomb = b"".join(compressor.compress(chunk) for _ in range(256))
    bomb += compressor.flush(zlib.Z_SYNC_FLUSH)[:-4]
    assert len(bomb) < 300 * 1024
    stream = client_frame(OP_BINARY, bomb, rsv=1)
    codec = server(max_msg_size=1 << 20, deflate=DEFLATE)
    tracemalloc.start()
    try:
        msgs = codec.feed(stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error_code(msgs) == 1009
    # What was allocated is the bomb itself (a copy or two), and no more than
    # the limit of output: nowhere near its 256 MiB.
    assert peak < 4 * len(stream) + 2 * (1 << 20)


def test_a_compressed_fragmented_text_across_frames() -> None:
    data = "ünïcödé ".encode() * 50
    compressed = deflated(data)
    stream = client_frame(OP_TEXT, compressed[:7], fin=False, rsv=1) + client_frame(
        OP_CONTINUATION, compressed[7:]
    )
    assert decoded(server(deflate=DEFLATE).feed(stream)) == [(TEXT, data.decode(), None)]


def test_garbage_compressed_data_fails_the_connection() -> None:
    stream = client_frame(OP_BINARY, b"\xff\xff\xff\xff", rsv=1)
    assert error_code(server(deflate=DEFLATE).feed(stream)) == 1002


# -- encoding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_a_servers_frames_are_unmasked_with_the_shortest_length(size: int) -> None:
    data = b"\xab" * size
    out = server().encode_binary(data)
    assert unframe(out) == [(0x82, OP_BINARY, data)]
    header = 2 if size < 126 else 4 if size < 65536 else 10
    assert len(out) == header + size
    assert not out[1] & 0x80


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 126, 65536])
def test_a_clients_frames_are_masked_with_fresh_keys(size: int) -> None:
    codec = client()
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    one, two = codec.encode_binary(data), codec.encode_binary(data)
    assert one[1] & 0x80 and two[1] & 0x80
    assert unframe(one) == [(0x82, OP_BINARY, data)] == unframe(two)
    key_at = 2 if size < 126 else 4 if size < 65536 else 10
    assert one[key_at : key_at + 4] != two[key_at : key_at + 4]


def test_encoded_frames_decode_in_the_other_role() -> None:
    for sender, receiver in ((client(), server()), (server(), client())):
        stream = (
            sender.encode_text("hé")
            + sender.encode_binary(b"\x00" * 70000)
            + sender.encode_ping(b"p")
            + sender.encode_pong(b"q")
            + sender.encode_close(4000, "done")
        )
        assert decoded(receiver.feed(stream)) == [
            (TEXT, "hé", None),
            (BINARY, b"\x00" * 70000, None),
            (PING, b"p", None),
            (PONG, b"q", None),
            (CLOSE, 4000, "done"),
        ]


def test_encoding_refuses_what_may_not_be_sent() -> None:
    codec = server()
    with pytest.raises(ValueError, match="125"):
        codec.encode_ping(b"x" * 126)
    with pytest.raises(ValueError, match="123"):
        codec.encode_close(1000, "x" * 124)
    codec.encode_close(1000, "x" * 123)
    assert codec.close_sent
    with pytest.raises(RuntimeError):
        codec.encode_text("after close")
    with pytest.raises(RuntimeError):
        codec.encode_close()
    with pytest.raises(ValueError):
        server().encode_close(None, "a reason needs a code")
    assert unframe(server().encode_close(None)) == [(0x88, OP_CLOSE, b"")]


def test_compressed_messages_with_and_without_context_takeover() -> None:
    data = b"the same sentence, again and again. " * 4
    takeover = Codec(client=True, deflate=DeflateParams())
    fresh = Codec(client=True, deflate=DeflateParams(local_no_context_takeover=True))
    first_t, second_t = takeover.encode_binary(data), takeover.encode_binary(data)
    first_f, second_f = fresh.encode_binary(data), fresh.encode_binary(data)
    # With the history kept the second message refers back to the first.
    assert len(second_t) < len(first_t)
    assert len(unframe(second_f)[0][2]) == len(unframe(first_f)[0][2])
    for frames_, params in (
        (first_t + second_t, DeflateParams()),
        (first_f + second_f, DeflateParams(remote_no_context_takeover=True)),
    ):
        assert all(first & 0x40 for first, _, _ in unframe(frames_))
        assert decoded(Codec(deflate=params).feed(frames_)) == [(BINARY, data, None)] * 2
    # compress=False sends one message plain, RSV1 clear.
    plain = takeover.encode_binary(data, compress=False)
    assert not plain[0] & 0x40
    assert unframe(plain)[0][2] == data


# -- masking -------------------------------------------------------------------------------------


def test_c_mask_matches_the_reference_at_every_length_and_alignment() -> None:
    if frames_module.c_mask is None:
        pytest.skip("treadle.websocket._speedups is not built")
    data = bytes((i * 7 + 3) & 0xFF for i in range(70000))
    view = memoryview(data)
    key = b"\x01\x80\xfe\x7f"
    for size in [*range(0, 80), 125, 126, 4095, 4096, 4097, 65535, 65536, 65537]:
        for offset in range(8):  # every alignment of the input
            piece = view[offset : offset + size]
            assert frames_module.c_mask(piece, key) == python_mask(piece, key), (size, offset)
    with pytest.raises(ValueError):
        frames_module.c_mask(b"data", b"key")


@pytest.mark.parametrize("size", [*range(0, 20), 125, 1000, 4096, 65537])
def test_mask_matches_the_byte_by_byte_reference(size: int) -> None:
    data = bytes((i * 7 + 3) & 0xFF for i in range(size))
    key = b"\x01\x80\xfe\x7f"
    impl = frames_module.mask  # the one mask_impl chose
    assert impl(data, key) == xor(data, key)
    assert impl(impl(data, key), key) == data
    assert impl(bytearray(data), key) == xor(data, key)
    assert impl(memoryview(data), key) == xor(data, key)


def test_masking_keys_come_from_the_os_and_differ() -> None:
    keys = {frames_module.mask_key() for _ in range(2000)}
    assert len(keys) > 1990  # 2000 draws from 2**32: a repeat is a one-in-a-thousand event
    assert all(len(k) == 4 for k in keys)


# -- the short path for one small frame -------------------------------------------------------


def test_the_short_path_agrees_with_the_general_one_on_every_small_frame() -> None:
    """feed() takes one whole small frame without the general machinery; it
    may only accept what the general path accepts, with the same result.
    Every first byte, both mask settings and lengths around the limits, in
    both roles, with valid and invalid UTF-8: the two must give the same
    messages (or the same error)."""
    payloads = [b"", b"ok", "é✓".encode(), b"\xff\xfe", b"x" * 125, b"y" * 30]
    checked = 0
    for client in (False, True):
        for max_size in (0, 10, 4 * 1024 * 1024):
            for first in range(256):
                for masked in (False, True):
                    for payload in payloads:
                        data = frame(
                            first & 0x0F,
                            payload,
                            fin=bool(first & 0x80),
                            rsv=((first >> 6) & 1) | ((first >> 4) & 2) | ((first >> 2) & 4),
                            key=KEY if masked else None,
                        )
                        fast = Codec(client=client, max_msg_size=max_size)
                        slow = Codec(client=client, max_msg_size=max_size)
                        slow._fast = False
                        got, want = fast.feed(data), slow.feed(data)
                        assert [
                            (m.type, m.data if m.type is not ERROR else m.data.code) for m in got
                        ] == [
                            (m.type, m.data if m.type is not ERROR else m.data.code) for m in want
                        ], (client, max_size, hex(first), masked, payload)
                        checked += 1
    assert checked == 2 * 3 * 256 * 2 * len(payloads)
