"""The WebSocket opening handshake (RFC 6455 section 4), both roles. Sans-IO.

The server side judges a request already parsed by the HTTP layer (method,
version, `Headers`) and either answers with the fields of the 101 response
or raises `HandshakeError` carrying the status to answer:

- not GET: 405 with `Allow: GET` (as aiohttp answers);
- not HTTP/1.1, no `websocket` token in `Upgrade`, no `upgrade` token in
  `Connection`, a `Sec-WebSocket-Key` that is missing, repeated or not 16
  bytes in base64, a `Sec-WebSocket-Version` missing or repeated, a
  malformed `Sec-WebSocket-Extensions`: 400;
- a version other than 13: 426 with `Sec-WebSocket-Version: 13`
  (RFC 6455 4.4), so the client learns which one to use.

Negotiation: the subprotocol is the first of the client's, in the client's
order, that the server supports (aiohttp's rule); none in common means no
`Sec-WebSocket-Protocol` in the answer, and the application decides. The
only extension is permessage-deflate (`deflate.py`).

The client side makes the request's fields (`client_request`) and checks the
server's answer (`client_check`): status 101, the `Upgrade` and
`Connection` tokens, the `Sec-WebSocket-Accept` value, a subprotocol that
was offered, an extension answer that the offer allows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ..http.headers import Headers, split_list
from .deflate import CLIENT_OFFER, DeflateParams, client_accept, parse_extensions, server_negotiate

__all__ = [
    "HandshakeError",
    "ServerHandshake",
    "accept_key",
    "client_check",
    "client_request",
    "server_handshake",
]

GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
VERSION: Final = "13"


class HandshakeError(Exception):
    """The opening handshake failed: `status` is the HTTP status to answer (on
    the server) or the one received (on the client), `headers` the fields to
    send with the refusal, and the message says what was wrong."""

    def __init__(self, status: int, message: str, headers: Sequence[tuple[str, str]] = ()):
        super().__init__(message)
        self.status = status
        self.headers = list(headers)


@dataclass(frozen=True, slots=True)
class ServerHandshake:
    """An accepted handshake: the 101 response's fields (`headers`), the
    chosen subprotocol and the permessage-deflate parameters (or None)."""

    headers: list[tuple[str, str]]
    protocol: str | None
    deflate: DeflateParams | None


def accept_key(key: str) -> str:
    """The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def _protocols(headers: Headers) -> list[str]:
    """The subprotocols in `Sec-WebSocket-Protocol` fields, in order, as sent
    (they compare case-sensitively)."""
    found: list[str] = []
    for value in headers.getall("Sec-WebSocket-Protocol"):
        found.extend(item for item in (p.strip(" \t") for p in value.split(",")) if item)
    return found


def _has_token(headers: Headers, name: str, token: bytes) -> bool:
    return any(token in split_list(value) for value in headers.getall_raw(name))


def _one(headers: Headers, name: str) -> str | None:
    values = headers.getall(name)
    if len(values) > 1:
        raise HandshakeError(400, f"more than one {name} field")
    return values[0] if values else None


def check_request(method: str, version: tuple[int, int], headers: Headers) -> str:
    """The client's `Sec-WebSocket-Key` if the request is a valid opening
    handshake; else raises `HandshakeError` (see the module docstring)."""
    if method != "GET":
        raise HandshakeError(
            405, f"a WebSocket handshake must be GET, not {method}", [("Allow", "GET")]
        )
    if version != (1, 1):
        raise HandshakeError(400, "a WebSocket handshake needs HTTP/1.1")
    if not _has_token(headers, "Upgrade", b"websocket"):
        raise HandshakeError(400, "no 'websocket' in the Upgrade field")
    if not _has_token(headers, "Connection", b"upgrade"):
        raise HandshakeError(400, "no 'upgrade' in the Connection field")
    ws_version = _one(headers, "Sec-WebSocket-Version")
    if ws_version is None:
        raise HandshakeError(400, "no Sec-WebSocket-Version field")
    if ws_version.strip(" \t") != VERSION:
        raise HandshakeError(
            426,
            f"unsupported WebSocket version {ws_version!r} (13 is supported)",
            [("Sec-WebSocket-Version", VERSION)],
        )
    key = _one(headers, "Sec-WebSocket-Key")
    if key is None:
        raise HandshakeError(400, "no Sec-WebSocket-Key field")
    key = key.strip(" \t")
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(400, f"Sec-WebSocket-Key {key[:40]!r} is not 16 bytes in base64")
    return key


def server_handshake(
    method: str,
    version: tuple[int, int],
    headers: Headers,
    *,
    protocols: Sequence[str] = (),
    compress: bool = True,
) -> ServerHandshake:
    """Judge a request and, if it is a valid opening handshake, agree a
    subprotocol (from `protocols`) and, if `compress`, permessage-deflate."""
    key = check_request(method, version, headers)
    response = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    protocol = None
    if protocols:
        for offered in _protocols(headers):
            if offered in protocols:
                protocol = offered
                response.append(("Sec-WebSocket-Protocol", protocol))
                break
    deflate = None
    if compress:
        values = headers.getall("Sec-WebSocket-Extensions")
        if values:
            try:
                offers = parse_extensions(values)
            except ValueError as exc:
                raise HandshakeError(400, f"malformed Sec-WebSocket-Extensions: {exc}") from None
            agreed = server_negotiate(offers)
            if agreed is not None:
                answer, deflate = agreed
                response.append(("Sec-WebSocket-Extensions", answer))
    return ServerHandshake(response, protocol, deflate)


def client_request(
    *, protocols: Sequence[str] = (), compress: bool = True
) -> tuple[str, list[tuple[str, str]]]:
    """A new `Sec-WebSocket-Key` and the handshake fields a client sends
    (beyond Host and its own), offering `protocols` and, if `compress`,
    permessage-deflate."""
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    fields = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", VERSION),
    ]
    if protocols:
        fields.append(("Sec-WebSocket-Protocol", ", ".join(protocols)))
    if compress:
        fields.append(("Sec-WebSocket-Extensions", CLIENT_OFFER))
    return key, fields


def client_check(
    status: int,
    headers: Headers,
    key: str,
    *,
    protocols: Sequence[str] = (),
    compress: bool = True,
) -> tuple[str | None, DeflateParams | None]:
    """The subprotocol and permessage-deflate parameters a server's answer
    agrees to, or `HandshakeError` (with the status received) if the answer
    is not a valid acceptance of the request `client_request` made."""
    if status != 101:
        raise HandshakeError(status, f"the server answered {status}, not 101")
    if not _has_token(headers, "Upgrade", b"websocket"):
        raise HandshakeError(status, "no 'websocket' in the answer's Upgrade field")
    if not _has_token(headers, "Connection", b"upgrade"):
        raise HandshakeError(status, "no 'upgrade' in the answer's Connection field")
    accept = _one_answer(headers, "Sec-WebSocket-Accept", status)
    if accept is None or accept.strip(" \t") != accept_key(key):
        raise HandshakeError(status, "wrong or missing Sec-WebSocket-Accept")
    protocol = None
    chosen = _protocols(headers)
    if chosen:
        if len(chosen) > 1 or chosen[0] not in protocols:
            raise HandshakeError(status, f"the server chose a subprotocol not offered: {chosen}")
        protocol = chosen[0]
    deflate = None
    values = headers.getall("Sec-WebSocket-Extensions")
    if values:
        if not compress:
            raise HandshakeError(status, "the server accepted an extension that was not offered")
        try:
            deflate = client_accept(values)
        except ValueError as exc:
            raise HandshakeError(status, f"bad Sec-WebSocket-Extensions answer: {exc}") from None
    return protocol, deflate


def _one_answer(headers: Headers, name: str, status: int) -> str | None:
    try:
        return _one(headers, name)
    except HandshakeError as exc:
        raise HandshakeError(status, str(exc)) from None
