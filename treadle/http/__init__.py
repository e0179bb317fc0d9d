"""HTTP/1.1 for Treadle: a strict sans-IO parser, a response writer, a server protocol.

The layer under the web framework. It knows asyncio's public Protocol/Transport
API only, so it runs on Treadle's loop, the stdlib loop and uvloop alike; the
parser knows no IO at all.

Modules: `parser` (bytes in, events out), `response_parser` (the same for a
client: responses, on the request parser's grammar), `headers` (the
case-insensitive ordered multi-dict), `writer` (serializing responses), `body`
(the request body stream), `server` (the `asyncio.Protocol` and its factory),
`errors` (`HTTPError`, and the client's `ResponseError`s).

Serving
-------
The application is one coroutine function, called once per request::

    from treadle.http import HTTPServer, ServerConfig

    async def app(request, body, response):
        if request.method == "POST":
            data = await body.read()          # sends 100 Continue if asked; 413 over the limit
        await response.send(200, [("Content-Type", "text/plain")], b"hello")

    http = HTTPServer(app, ServerConfig(header_timeout=10))
    server = await loop.create_server(http, "127.0.0.1", 8080)
    ...
    server.close(); await http.shutdown(); await server.wait_closed()

- `request` is a `Request`: `method`, `target`, `path`, `query_string`,
  `version`, `headers` (a `Headers`), `keep_alive`, `expect_continue`,
  `upgrade`, `content_length`, `chunked`.
- `body` is a `Body`: `await read(n=-1)`, `await readany()`,
  `await readexactly(n)`, `async for piece in iter_chunked(n)`, `at_eof()`,
  `trailers`.
- `response` is a `ResponseWriter`: `await send(status, headers, body)` writes the
  whole response in one `transport.write`; or `await start(status, headers,
  content_length=None)`, `await write(data)`..., `await write_eof()` streams it
  (chunked when no length is given). `await send_interim(103, headers)` sends
  an interim response first; `await drain()` waits out `pause_writing`;
  `detach()` hands the transport over after a 101; `force_close()` ends the
  connection after this response.

Handlers run eagerly on Python 3.12+ (no Task scheduling for a handler that does
not suspend) and in an ordinary Task on 3.11; see `server`.

Where Treadle is stricter than its peers, and why
--------------------------------------------------
Request smuggling and response splitting live where one HTTP implementation is
lenient and the next one on the path is not. Treadle refuses (400 and close,
unless another status is named) wherever the RFC allows a choice and a peer has
been burnt by leniency. The peers named are llhttp 9 (httptools 0.9, strict
mode), h11 0.16 and aiohttp's pure-Python parser; `tests/http/test_differential.py`
checks each claim against the first two on every run.

1. **Bare LF line endings are refused** in the head, chunk lines and trailers
   (RFC 9112 2.2 lets a recipient accept them; h11 does). A bare LF is where
   two parsers disagree about where a line ends.
2. **A bare CR is refused** anywhere (aiohttp CVE-2023-37276, llhttp
   CVE-2023-30589); llhttp and h11 still let one through in some positions.
3. **Only exactly CRLF ends a chunk's data** (h11 CVE-2025-43859 accepted any
   two bytes).
4. **Chunk lines follow the grammar**: 1-16 hex digits, then `;name` or
   `;name=token` / `;name="quoted"` extensions, no whitespace (RFC 9112 allows
   BWS around `;` and `=`, which llhttp and h11 refuse too), no CR or LF inside
   (aiohttp CVE-2024-52304). h11 skips anything up to CRLF.
5. **A chunk size has at most 16 hex digits**, even with leading zeros; llhttp
   and h11 accept 20.
6. **`Transfer-Encoding` must be exactly `chunked`**: a known coding before it
   is 501 (Treadle decodes none; llhttp accepts `gzip, chunked` and hands up a
   coded body), an unknown one 400, `chunked` twice 400.
7. **`Transfer-Encoding` in an HTTP/1.0 request is refused** (RFC 9112 6.1
   calls its framing faulty); llhttp and h11 accept it.
8. **`Content-Length` is plain ASCII digits, one value per field**: `3, 3` in
   one field is refused (h11 accepts it), differing repeated fields are
   refused. `int()` never sees unchecked bytes (aiohttp CVE-2025-69224).
9. **Header values hold no control character but HTAB** (h11 accepts `\x01`
   and DEL).
10. **Exactly one `Host`**: a duplicate (aiohttp CVE-2026-34525) or, in
    HTTP/1.1, a missing one is refused, as h11 does and llhttp does not; and a
    `Host` value must look like `host[:port]` (no `@`, `/`, spaces...), which
    neither peer checks.
11. **The request target is printable ASCII in one of the four forms, each only
    where it belongs**: `*` only for OPTIONS, authority-form only (and always)
    for CONNECT. Both peers accept `GET *` and `CONNECT /`.
12. **Versions other than 1.0 and 1.1 get 505**, including 1.2 (RFC 9110 2.5
    lets a server treat it as 1.1; h11 does) and 2.0 (llhttp and h11 accept
    `HTTP/2.0` on an HTTP/1 connection).
13. **Trailers are parsed with the header rules and limits**, and may not carry
    `Content-Length`, `Transfer-Encoding`, `Host` or `Connection` (aiohttp
    CVE-2025-53643 and CVE-2026-22815; h11 accepts framing fields there).
14. **Limits hold across reads** (aiohttp CVE-2026-54277), and the server
    parses at most `max_pipelined` requests ahead of the one it is answering
    (CVE-2026-54273).
15. **An application cannot split a response**: a header value or reason
    phrase with CR/LF raises `ValueError` (uvicorn CVE-2020-7695, aiohttp
    CVE-2026-34519).
16. **One SP between the parts of the request line** (llhttp accepts several).
17. **obs-fold is refused** (h11 unfolds it).
18. **`Content-Length` with `Transfer-Encoding` is refused** (h11 lets
    Transfer-Encoding win; aiohttp's two parsers once disagreed,
    CVE-2023-47641).

Also refused, as by the strict peers: whitespace between a header name and its
colon (llhttp CVE-2021-22959), non-token characters in a method or header name.

Where Treadle accepts what a peer refuses, the RFC is on its side: any token is
a method (llhttp knows a fixed list); identical repeated `Content-Length` fields
are one value (RFC 9110 8.6; llhttp refuses them); empty lines before a request
line are skipped (RFC 9112 2.2; h11 refuses them).

Reading responses (for the client)
----------------------------------
`ResponseParser` reads a connection's responses in the order of the requests
it was told of (`expect(method)`); its events are `InformationalResponse` (1xx
but 101: act on 100 Continue, then go on pulling), `Response`, `bytes` and
`EndOfMessage`; a broken rule raises `ResponseHeadError` or
`ResponsePayloadError` and the connection must not be reused::

    parser = ResponseParser()
    parser.expect("GET")                    # for each request sent, in order
    parser.feed(data)                       # ... and feed_eof() at the close
    while (event := parser.next_event()) is not None:
        ...

It runs the request parser's own code for everything the two directions share
(the header block, Content-Length and Transfer-Encoding, keep-alive, chunked
bodies and trailers), so rules 2-9, 12-14 and 18 above hold for responses too,
and `tests/http/test_response_differential.py` checks it against llhttp's
response parser (httptools, strict mode) and h11 as a client. Stricter than a
peer, besides those shared rules:

- R1. **A reason phrase holds no control character but HTAB** (both peers take
  `\x01`).
- R2. **A status code is 100-999**: 099 is refused (llhttp takes it; h11
  refuses it too). 600-999 are delivered as they are, framed as final
  responses (RFC 9110 15: treat them as 5xx).
- R3. **Nothing comes before a status line**: an empty line left over after a
  body is not skipped (llhttp skips it; RFC 9112 2.2's skipping is for
  servers reading requests), so a server's extra CRLF fails the next
  response instead of shifting the framing of the rest.
- R4. **Bytes that answer no request are refused**, and bytes past a
  response's framing are the next response's, never this one's: a 204 with a
  body, or five bytes more than Content-Length, fail the connection.
- R5. **A status code is exactly three ASCII digits** (`HTTP/1.1 2000 OK` is
  refused, as by both peers), and only HTTP/1.0 and 1.1 are read (llhttp
  takes `HTTP/2.0`, h11 `HTTP/1.2`).
- `Transfer-Encoding` whose final coding is not chunked is refused, where RFC
  9112 6.3 would read the body until the close (llhttp does; h11 refuses it
  too), and `gzip, chunked` is refused (llhttp hands up a coded body).

More lenient than llhttp's strict mode, as RFC 9112 tells a user agent to be
(the module docstring of `response_parser` says why):

- **A bare LF ends a line of the head** (RFC 9112 2.2; h11, curl and browsers
  read it, llhttp's strict mode refuses it). Not in chunked framing: the
  decoder is the request parser's and wants CRLF.
- **obs-fold is unfolded**: the fold and the whitespace around it become one SP
  (RFC 9112 5.2; llhttp refuses it; h11 unfolds but keeps the whitespace
  before the fold).
- Identical repeated `Content-Length` fields are one value (as for requests),
  and bytes after a response that closes the connection are left unread
  (`trailing_data`), not an error (llhttp refuses both).
"""

from __future__ import annotations

import os

from . import parser as _parser
from .body import Body
from .errors import HTTPError, ResponseError, ResponseHeadError, ResponsePayloadError
from .headers import Headers
from .parser import (
    END_OF_MESSAGE,
    EndOfMessage,
    Limits,
    ParserState,
    Request,
    RequestParser,
)
from .response_parser import InformationalResponse, Response, ResponseLimits, ResponseParser
from .server import App, HTTPServer, HTTPServerProtocol, ResponseWriter, ServerConfig
from .writer import DateCache

if os.environ.get("TREADLE_NO_EXTENSIONS"):
    # The operator's off switch for the parser's C fast path (set at start-up;
    # the parser module itself reads no environment: it does no IO).
    _parser._scan_head = _parser._scan_chunks = None

__all__ = [
    "END_OF_MESSAGE",
    "App",
    "Body",
    "DateCache",
    "EndOfMessage",
    "HTTPError",
    "HTTPServer",
    "HTTPServerProtocol",
    "Headers",
    "InformationalResponse",
    "Limits",
    "ParserState",
    "Request",
    "RequestParser",
    "Response",
    "ResponseError",
    "ResponseHeadError",
    "ResponseLimits",
    "ResponseParser",
    "ResponsePayloadError",
    "ResponseWriter",
    "ServerConfig",
]
