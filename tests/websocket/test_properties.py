"""Property tests: any sequence of messages survives encode -> split anywhere
-> decode, in both roles, with and without compression (and context
takeover), and whatever bytes arrive the codec either decodes them or fails
with a close code, never raising."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from treadle.websocket.codec import Codec
from treadle.websocket.deflate import DeflateParams
from treadle.websocket.frames import WebSocketError, WSMsgType

pytestmark = pytest.mark.usefixtures("mask_impl")

messages = st.lists(
    st.one_of(
        st.text(max_size=300).map(lambda t: (WSMsgType.TEXT, t)),
        st.binary(max_size=300).map(lambda b: (WSMsgType.BINARY, b)),
        st.binary(max_size=125).map(lambda b: (WSMsgType.PING, b)),
        st.binary(max_size=125).map(lambda b: (WSMsgType.PONG, b)),
        # A large one now and then crosses the 16-bit length form.
        st.integers(min_value=126, max_value=70000).map(
            lambda n: (WSMsgType.BINARY, bytes(range(256)) * (n // 256) + bytes(n % 256))
        ),
    ),
    max_size=12,
)

deflates = st.one_of(
    st.none(),
    st.builds(
        DeflateParams,
        local_no_context_takeover=st.booleans(),
        remote_no_context_takeover=st.booleans(),
        local_max_window_bits=st.integers(min_value=9, max_value=15),
    ),
)


def encode(codec: Codec, kind: WSMsgType, data: object) -> bytes:
    if kind is WSMsgType.TEXT:
        assert isinstance(data, str)
        return codec.encode_text(data)
    assert isinstance(data, bytes)
    if kind is WSMsgType.BINARY:
        return codec.encode_binary(data)
    if kind is WSMsgType.PING:
        return codec.encode_ping(data)
    return codec.encode_pong(data)


def mirror(params: DeflateParams | None) -> DeflateParams | None:
    """The receiver's view of what the sender agreed."""
    if params is None:
        return None
    return DeflateParams(remote_no_context_takeover=params.local_no_context_takeover)


@settings(max_examples=150, deadline=None)
@given(
    msgs=messages,
    client_sends=st.booleans(),
    deflate=deflates,
    cuts=st.lists(st.integers(min_value=0), max_size=8),
)
def test_messages_survive_any_split(
    msgs: list[tuple[WSMsgType, object]],
    client_sends: bool,
    deflate: DeflateParams | None,
    cuts: list[int],
) -> None:
    sender = Codec(client=client_sends, deflate=deflate)
    receiver = Codec(client=not client_sends, deflate=mirror(deflate))
    stream = b"".join(encode(sender, kind, data) for kind, data in msgs)
    stream += sender.encode_close(1000, "end")
    points = sorted({c % (len(stream) + 1) for c in cuts})
    got = []
    start = 0
    for point in [*points, len(stream)]:
        got.extend(receiver.feed(stream[start:point]))
        start = point
    assert [(m.type, m.data) for m in got] == [*msgs, (WSMsgType.CLOSE, 1000)]
    assert got[-1].extra == "end"


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), client=st.booleans(), deflate=deflates)
def test_any_bytes_decode_or_fail_with_a_close_code(
    data: bytes, client: bool, deflate: DeflateParams | None
) -> None:
    codec = Codec(client=client, max_msg_size=1000, deflate=deflate)
    out = codec.feed(data)
    for msg in out[:-1]:
        assert msg.type is not WSMsgType.ERROR
    if out and out[-1].type is WSMsgType.ERROR:
        assert isinstance(out[-1].data, WebSocketError)
        assert out[-1].data.code in (1002, 1007, 1009)
        assert codec.feed(data) == []
