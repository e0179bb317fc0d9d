"""The opening handshake (RFC 6455 section 4) and permessage-deflate's
negotiation (RFC 7692 section 7), both roles, sans-IO."""

from __future__ import annotations

import base64

import pytest

from treadle.http.headers import Headers
from treadle.websocket.deflate import (
    CLIENT_OFFER,
    DeflateParams,
    client_accept,
    parse_extensions,
    server_negotiate,
)
from treadle.websocket.handshake import (
    HandshakeError,
    accept_key,
    client_check,
    client_request,
    server_handshake,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def headers(*pairs: tuple[str, str]) -> Headers:
    return Headers([(n.encode(), v.encode()) for n, v in pairs])


GOOD = (
    ("Host", "example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Sec-WebSocket-Version", "13"),
)


def good(*extra: tuple[str, str], without: str = "") -> Headers:
    return headers(*(p for p in GOOD if p[0] != without), *extra)


def test_the_rfcs_example_accept_key() -> None:
    # RFC 6455 section 1.3.
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_valid_request_is_accepted() -> None:
    hs = server_handshake("GET", (1, 1), good())
    assert dict(hs.headers) == {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
    }
    assert hs.protocol is None and hs.deflate is None


def test_tokens_in_lists_and_any_case() -> None:
    hs = server_handshake(
        "GET",
        (1, 1),
        headers(
            ("Host", "h"),
            ("Upgrade", "WebSocket"),
            ("Connection", "keep-alive, UPGRADE"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13"),
        ),
    )
    assert hs.headers[2] == ("Sec-WebSocket-Accept", accept_key(KEY))


def refused(method: str, version: tuple[int, int], hdrs: Headers) -> HandshakeError:
    with pytest.raises(HandshakeError) as info:
        server_handshake(method, version, hdrs)
    return info.value


def test_a_method_other_than_get_is_405_with_allow() -> None:
    exc = refused("POST", (1, 1), good())
    assert exc.status == 405 and exc.headers == [("Allow", "GET")]


@pytest.mark.parametrize(
    ("version", "hdrs"),
    [
        ((1, 0), good()),
        ((1, 1), good(without="Upgrade")),
        ((1, 1), good(("Upgrade", "h2c"), without="Upgrade")),
        ((1, 1), good(without="Connection")),
        ((1, 1), good(("Connection", "keep-alive"), without="Connection")),
        ((1, 1), good(without="Sec-WebSocket-Key")),
        ((1, 1), good(("Sec-WebSocket-Key", KEY))),  # twice
        ((1, 1), good(("Sec-WebSocket-Key", "c2hvcnQ="), without="Sec-WebSocket-Key")),
        (
            (1, 1),
            good(("Sec-WebSocket-Key", "not base64 at all!!!!!=="), without="Sec-WebSocket-Key"),
        ),
        ((1, 1), good(("Sec-WebSocket-Key", KEY[:-2]), without="Sec-WebSocket-Key")),
        ((1, 1), good(without="Sec-WebSocket-Version")),
        ((1, 1), good(("Sec-WebSocket-Version", "13"))),  # twice
        ((1, 1), good(("Sec-WebSocket-Extensions", "permessage-deflate; ="))),
    ],
    ids=[
        "http10",
        "no-upgrade",
        "upgrade-h2c",
        "no-connection",
        "connection-no-upgrade",
        "no-key",
        "two-keys",
        "short-key",
        "bad-base64",
        "unpadded-key",
        "no-version",
        "two-versions",
        "bad-extensions",
    ],
)
def test_requests_refused_with_400(version: tuple[int, int], hdrs: Headers) -> None:
    assert refused("GET", version, hdrs).status == 400


@pytest.mark.parametrize("version", ["8", "12", "14", "13, 8"])
def test_another_version_is_426_naming_13(version: str) -> None:
    exc = refused(
        "GET", (1, 1), good(("Sec-WebSocket-Version", version), without="Sec-WebSocket-Version")
    )
    assert exc.status == 426
    assert exc.headers == [("Sec-WebSocket-Version", "13")]


def test_subprotocol_the_clients_first_that_the_server_speaks() -> None:
    offered = good(("Sec-WebSocket-Protocol", "chat, superchat"), ("Sec-WebSocket-Protocol", "v2"))
    hs = server_handshake("GET", (1, 1), offered, protocols=("v2", "superchat"))
    assert hs.protocol == "superchat"
    assert ("Sec-WebSocket-Protocol", "superchat") in hs.headers
    none = server_handshake("GET", (1, 1), offered, protocols=("other",))
    assert none.protocol is None
    assert all(name != "Sec-WebSocket-Protocol" for name, _ in none.headers)
    # Subprotocols compare case-sensitively.
    assert server_handshake("GET", (1, 1), offered, protocols=("Chat",)).protocol is None


# -- the client's side -------------------------------------------------------------------------


def answer(key: str, *extra: tuple[str, str]) -> Headers:
    return headers(
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
        *extra,
    )


def test_the_clients_request_and_a_good_answer() -> None:
    key, fields = client_request(protocols=("chat", "v2"))
    assert len(base64.b64decode(key, validate=True)) == 16
    assert dict(fields) == {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": "chat, v2",
        "Sec-WebSocket-Extensions": CLIENT_OFFER,
    }
    assert client_request()[0] != key
    protocol, deflate = client_check(
        101,
        answer(
            key,
            ("Sec-WebSocket-Protocol", "v2"),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ),
        key,
        protocols=("chat", "v2"),
    )
    assert protocol == "v2" and deflate == DeflateParams()
    # ...and the server's own answer passes the client's checks.
    request = headers(("Host", "h"), *fields)
    hs = server_handshake("GET", (1, 1), request, protocols=("v2",))
    assert client_check(101, headers(*hs.headers), key, protocols=("chat", "v2")) == (
        "v2",
        DeflateParams(),
    )


@pytest.mark.parametrize(
    ("status", "extra", "without_accept"),
    [
        (200, (), False),
        (101, (), True),
        (101, (("Sec-WebSocket-Protocol", "other"),), False),
        (101, (("Sec-WebSocket-Protocol", "chat, v2"),), False),
        (101, (("Sec-WebSocket-Extensions", "x-unknown"),), False),
        (
            101,
            (("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits=8"),),
            False,
        ),
        (101, (("Sec-WebSocket-Extensions", "permessage-deflate, permessage-deflate"),), False),
        (101, (("Sec-WebSocket-Extensions", "permessage-deflate; foo"),), False),
    ],
    ids=[
        "not-101",
        "no-accept",
        "unoffered-protocol",
        "two-protocols",
        "unoffered-extension",
        "window-8",
        "deflate-twice",
        "unknown-param",
    ],
)
def test_bad_answers_fail_the_clients_handshake(
    status: int, extra: tuple[tuple[str, str], ...], without_accept: bool
) -> None:
    key, _ = client_request(protocols=("chat", "v2"))
    hdrs = answer(key, *extra)
    if without_accept:
        hdrs = headers(("Upgrade", "websocket"), ("Connection", "Upgrade"))
    with pytest.raises(HandshakeError) as info:
        client_check(status, hdrs, key, protocols=("chat", "v2"))
    assert info.value.status == status


def test_a_wrong_accept_value_fails() -> None:
    key, _ = client_request()
    with pytest.raises(HandshakeError, match="Accept"):
        client_check(101, answer("AAAAAAAAAAAAAAAAAAAAAA=="), key)


def test_an_extension_answer_when_none_was_offered_fails() -> None:
    key, _ = client_request(compress=False)
    with pytest.raises(HandshakeError):
        client_check(
            101,
            answer(key, ("Sec-WebSocket-Extensions", "permessage-deflate")),
            key,
            compress=False,
        )


# -- the Sec-WebSocket-Extensions grammar and the negotiation ------------------------------


def test_parsing_extension_offers() -> None:
    assert parse_extensions(
        [
            'permessage-deflate; client_max_window_bits; server_max_window_bits="10" , x-foo',
            "permessage-deflate ;server_no_context_takeover",
        ]
    ) == [
        (
            "permessage-deflate",
            [("client_max_window_bits", None), ("server_max_window_bits", "10")],
        ),
        ("x-foo", []),
        ("permessage-deflate", [("server_no_context_takeover", None)]),
    ]
    assert parse_extensions([", ,"]) == []


@pytest.mark.parametrize(
    "value", ["a b", "a;", "a; b=", ";a", "a, b c", 'a; b="x', "a=1", "a; b=c d"]
)
def test_malformed_extension_headers(value: str) -> None:
    with pytest.raises(ValueError):
        parse_extensions([value])


@pytest.mark.parametrize(
    ("offer", "answer", "params"),
    [
        ("permessage-deflate", "permessage-deflate", DeflateParams()),
        ("permessage-deflate; client_max_window_bits", "permessage-deflate", DeflateParams()),
        (
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover",
            DeflateParams(local_no_context_takeover=True),
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            "permessage-deflate; client_no_context_takeover",
            DeflateParams(remote_no_context_takeover=True),
        ),
        (
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=10",
            DeflateParams(local_max_window_bits=10),
        ),
        # An offer we cannot honour is skipped for the next one.
        (
            "permessage-deflate; server_max_window_bits=8, permessage-deflate",
            "permessage-deflate",
            DeflateParams(),
        ),
        (
            "permessage-deflate; unknown, permessage-deflate; client_max_window_bits=9",
            "permessage-deflate",
            DeflateParams(),
        ),
        ("x-webkit-deflate-frame, permessage-deflate", "permessage-deflate", DeflateParams()),
    ],
)
def test_the_server_accepts_the_first_offer_it_can_honour(
    offer: str, answer: str, params: DeflateParams
) -> None:
    assert server_negotiate(parse_extensions([offer])) == (answer, params)


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; server_max_window_bits=8",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "x-other",
    ],
)
def test_offers_the_server_declines(offer: str) -> None:
    assert server_negotiate(parse_extensions([offer])) is None


def test_the_server_may_reset_its_own_context_unasked() -> None:
    assert server_negotiate(parse_extensions(["permessage-deflate"]), no_context_takeover=True) == (
        "permessage-deflate; server_no_context_takeover",
        DeflateParams(local_no_context_takeover=True),
    )


@pytest.mark.parametrize(
    ("answer", "params"),
    [
        ("permessage-deflate", DeflateParams()),
        (
            "permessage-deflate; server_no_context_takeover",
            DeflateParams(remote_no_context_takeover=True),
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            DeflateParams(local_no_context_takeover=True),
        ),
        ("permessage-deflate; client_max_window_bits=10", DeflateParams(local_max_window_bits=10)),
        ("permessage-deflate; server_max_window_bits=9", DeflateParams()),
    ],
)
def test_the_client_reads_the_servers_answer(answer: str, params: DeflateParams) -> None:
    assert client_accept([answer]) == params
    assert client_accept([]) is None
