"""HTTP/1.1 for Treadle: a strict sans-IO parser, a response writer, a server protocol.

The layer under the web framework. It knows asyncio's public Protocol/Transport
API only, so it runs on Treadle's loop, the stdlib loop and uvloop alike; the
parser knows no IO at all.

Modules: `parser` (bytes in, events out), `headers` (the case-insensitive ordered
multi-dict), `writer` (serializing responses), `body` (the request body stream),
`server` (the `asyncio.Protocol` and its factory), `errors` (`HTTPError`).

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
  (chunked when no length is given). `await drain()` waits out `pause_writing`;
  `detach()` hands the transport over after a 101.

Handlers run eagerly on Python 3.12+ (no Task scheduling for a handler that does
not suspend) and in an ordinary Task on 3.11; see `server`.

Where Treadle is stricter than its peers, and why
--------------------------------------------------
Request smuggling and response splitting live in the places where one HTTP
implementation is lenient and the next one on the path is not. Treadle refuses
(400 and close, unless another status is named) wherever the RFC allows a choice
and a peer has been burnt by leniency. Compared with llhttp (httptools, Node),
h11 and aiohttp's pure-Python parser:

1. **Bare LF line endings are refused**, in the head, chunk lines and trailers;
   RFC 9112 2.2 lets a recipient accept them, llhttp and h11 do. A bare LF is
   where two parsers disagree about where a line ends.
2. **A bare CR is refused** anywhere in the head (aiohttp CVE-2023-37276, llhttp
   CVE-2023-30589).
3. **Only exactly CRLF ends a chunk's data**; h11 accepted any two bytes
   (CVE-2025-43859).
4. **Chunk extensions are parsed by the grammar** (token, `=`, token or
   quoted-string); h11 skips anything up to CRLF, and a LF inside an extension
   was aiohttp's CVE-2024-52304.
5. **A chunk size has at most 16 hex digits**; longer, even with leading zeros,
   is an overflow (h11 allows 20).
6. **`Transfer-Encoding` must be exactly `chunked`**: a known coding before it is
   501 (Treadle decodes none), an unknown one 400, `chunked` twice 400. h11 and
   llhttp accept `gzip, chunked` and pass the coded body up.
7. **`Transfer-Encoding` in an HTTP/1.0 request is refused** (RFC 9112 6.1 calls
   its framing faulty); the peers accept it.
8. **`Content-Length` is plain ASCII digits, one value per field**: `5, 5` in one
   field is refused (h11 accepts it); identical repeated fields are accepted,
   differing ones refused (llhttp refuses any repeat). `int()` never sees raw
   bytes (aiohttp CVE-2025-69224: non-ASCII digits).
9. **Header values hold no control character but HTAB** (NUL, CR, LF, DEL and the
   rest are refused); llhttp accepts some CTLs in values.
10. **A duplicate `Host` is refused** (aiohttp CVE-2026-34525), a missing one in
    HTTP/1.1 too, and so is a `Host` value with characters no host or port may
    hold (`@`, `/`, spaces...): the peers pass any value up.
11. **The request target is printable ASCII** in one of the four forms, each only
    where it belongs: `*` only for OPTIONS, authority-form only (and always)
    for CONNECT. llhttp accepts non-ASCII bytes in the target.
12. **Versions other than 1.0 and 1.1 get 505**, including 1.2+ (which RFC 9110
    2.5 lets a server treat as 1.1) and 0.9.
13. **Trailers are parsed with the header rules and limits**, and a trailer may
    not carry `Content-Length`, `Transfer-Encoding`, `Host` or `Connection`
    (aiohttp CVE-2025-53643, CVE-2026-22815: trailers unparsed or unbounded).
14. **Limits hold across reads**: a line split over many TCP segments meets the
    same limit as one in a single segment (aiohttp CVE-2026-54277), and the
    server parses at most `max_pipelined` requests ahead of the one being
    answered (CVE-2026-54273).
15. **Response header values with CR/LF raise `ValueError`** in the application
    instead of being sent (uvicorn CVE-2020-7695).

Rules shared with the strict peers (no leniency anywhere): whitespace between a
header name and its colon (llhttp CVE-2021-22959), obs-fold, non-token method
or header name characters, `Content-Length` with `Transfer-Encoding`.
"""

from __future__ import annotations

from .body import Body
from .errors import HTTPError
from .headers import Headers
from .parser import (
    END_OF_MESSAGE,
    EndOfMessage,
    Limits,
    ParserState,
    Request,
    RequestParser,
)
from .server import App, HTTPServer, HTTPServerProtocol, ResponseWriter, ServerConfig
from .writer import DateCache

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
    "Limits",
    "ParserState",
    "Request",
    "RequestParser",
    "ResponseWriter",
    "ServerConfig",
]
