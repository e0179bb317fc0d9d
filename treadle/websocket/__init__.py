"""WebSocket (RFC 6455) with permessage-deflate (RFC 7692), for both roles.

A protocol layer of its own, beside HTTP: the server's
`web.WebSocketResponse`, the client's `ws_connect` and the ASGI `websocket`
scope are all built on it, so the rules live here once.

- `handshake`: the opening handshake, sans-IO (judge a request, make the
  101's fields; make a client's request, check a server's answer).
- `codec`: frames and messages, sans-IO: `Codec.feed(bytes)` gives
  messages, `Codec.encode_*()` gives bytes. Every rule of the protocol, and
  the message-size limit (enforced while inflating), is applied here.
- `deflate`: permessage-deflate's negotiation and compressors.
- `frames`: opcodes, close codes, masking; the message types the
  application sees (`WSMsgType`, `WSMessage`, `WSCloseCode`).
- `connection`: the asyncio side (`WebSocketProtocol`), which runs on any
  loop, and the application's methods (`WebSocketMethods`: `receive()`,
  `send_str()`, `close()`... with aiohttp's names and behaviour).

The modules but `connection` do no IO (a test keeps it so).
"""

from __future__ import annotations

from .codec import DEFAULT_MAX_MSG_SIZE, Codec
from .connection import WebSocketMethods, WebSocketProtocol
from .deflate import DeflateParams
from .frames import WebSocketError, WSCloseCode, WSMessage, WSMsgType
from .handshake import (
    HandshakeError,
    ServerHandshake,
    accept_key,
    client_check,
    client_request,
    server_handshake,
)

__all__ = [
    "DEFAULT_MAX_MSG_SIZE",
    "Codec",
    "DeflateParams",
    "HandshakeError",
    "ServerHandshake",
    "WSCloseCode",
    "WSMessage",
    "WSMsgType",
    "WebSocketError",
    "WebSocketMethods",
    "WebSocketProtocol",
    "accept_key",
    "client_check",
    "client_request",
    "server_handshake",
]
