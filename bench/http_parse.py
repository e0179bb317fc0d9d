"""Request parsing speed: Treadle's sans-IO parser against llhttp and h11.

    .venv/bin/python bench/http_parse.py [--repeat 5]

Two messages, each fed whole, in one run:

- a browser GET with seven header fields;
- a chunked POST (five fields, three chunks and the last-chunk), parsed to its
  end: head, every body piece, end of message.

Per parser, microseconds per message (best of `--repeat` timings):

- Treadle, one parser per connection reused for many requests, as a server
  uses it; two heads that differ in one field alternate, so the parser's
  repeated-header-block memo never hits (the honest row);
- Treadle with the memo hitting (one message repeated verbatim, as a
  keep-alive browser mostly sends);
- Treadle with a fresh parser per message (a connection per request);
- httptools (llhttp, in C), one parser reused, with callbacks that collect the
  URL, the headers and the body as a server must;
- h11, a fresh connection per message (h11 cannot start the next cycle without
  a response being sent).

Ratios are against httptools, the issue's target (Treadle no slower than it).
httptools and h11 come with the `test` extra.

A second table does the same for responses, as a client reads them: a
response with eight header fields and a short Content-Length body, and a
chunked one (three chunks), each to a GET. Treadle's ResponseParser reused
on one connection (`expect()`, then head, body, end of message; its head has
no C fast path), httptools' HttpResponseParser reused, h11 as a client on a
fresh connection per response (it must send a request first).
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

# bench/http.py would hide the stdlib's `http` package: put the repository
# root first instead of this folder.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from treadle.http import (  # noqa: E402
    EndOfMessage,
    RequestParser,
    Response,
    ResponseParser,
    parser as parser_module,
)

_FIELDS = (
    b"Host: localhost:8080\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
)
GET_A = b"GET /hello/world?q=1 HTTP/1.1\r\n" + _FIELDS + b"Cookie: session=4f2a9c81e07b\r\n\r\n"
GET_B = b"GET /hello/world?q=2 HTTP/1.1\r\n" + _FIELDS + b"Cookie: session=77d0e3b2a915\r\n\r\n"
assert GET_A.count(b"\r\n") - 2 == 7  # seven fields

POST = (
    b"POST /upload HTTP/1.1\r\n"
    b"Host: localhost:8080\r\n"
    b"User-Agent: curl/8.5.0\r\n"
    b"Accept: */*\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
    b"10\r\n0123456789abcdef\r\n"
    b"1a;name=value\r\nabcdefghijklmnopqrstuvwxyz\r\n"
    b"5\r\nhello\r\n"
    b"0\r\n\r\n"
)
POST_B = POST.replace(b"curl/8.5.0", b"curl/8.6.0")
POST_BODY = b"0123456789abcdef" + b"abcdefghijklmnopqrstuvwxyz" + b"hello"


def _drain(parser: RequestParser) -> int:
    """Parse one message as the server does (`next_head()`, then the body's
    events, if any); return the body size (a check)."""
    head = parser.next_head()
    if head is None:
        raise AssertionError("head incomplete")
    if not (head.chunked or head.content_length):
        return 0  # next_head() ended it
    size = 0
    while True:
        event = parser.next_event()
        if isinstance(event, bytes):
            size += len(event)
        elif isinstance(event, EndOfMessage):
            return size
        elif event is None:
            raise AssertionError("message incomplete")


def reused(first: bytes, second: bytes) -> Callable[[], None]:
    """Two messages, one after the other, on one long-lived parser."""
    parser = RequestParser()

    def run() -> None:
        parser.feed(first)
        _drain(parser)
        parser.feed(second)
        _drain(parser)

    return run


def fresh(first: bytes, second: bytes) -> Callable[[], None]:
    """Two messages, each on a new parser."""

    def run() -> None:
        for message in (first, second):
            parser = RequestParser()
            parser.feed(message)
            _drain(parser)

    return run


def pure_python(run: Callable[[], None]) -> Callable[[], None]:
    """`run` with the parser's optional C fast path switched off."""

    def without_c() -> None:
        saved = parser_module._scan_head, parser_module._scan_chunks
        parser_module._scan_head = parser_module._scan_chunks = None
        try:
            run()
        finally:
            parser_module._scan_head, parser_module._scan_chunks = saved

    return without_c


def treadle_cases() -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """name -> (GET run, POST run); each run parses two messages."""
    cases: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "treadle (reused, memo missed)": (reused(GET_A, GET_B), reused(POST, POST_B)),
        "treadle (reused, memo hit)": (reused(GET_A, GET_A), reused(POST, POST)),
        "treadle (fresh parser)": (fresh(GET_A, GET_B), fresh(POST, POST_B)),
    }
    if parser_module._scan_head is None:
        print("treadle.http._speedups is not built: the rows are pure Python")
    else:
        cases["treadle, no C (memo missed)"] = (
            pure_python(reused(GET_A, GET_B)),
            pure_python(reused(POST, POST_B)),
        )
    return cases


def httptools_cases() -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    import httptools

    class Collector:
        """What a server keeps from llhttp's callbacks."""

        def __init__(self) -> None:
            self.url = b""
            self.headers: list[tuple[bytes, bytes]] = []
            self.body: list[bytes] = []
            self.done = 0

        def on_message_begin(self) -> None:
            self.headers = []
            self.body = []

        def on_url(self, url: bytes) -> None:
            self.url = url

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name, value))

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            self.done += 1

    get_sink = Collector()
    get_parser = httptools.HttpRequestParser(get_sink)
    post_sink = Collector()
    post_parser = httptools.HttpRequestParser(post_sink)

    def get() -> None:
        get_parser.feed_data(GET_A)
        get_parser.feed_data(GET_B)

    def post() -> None:
        post_parser.feed_data(POST)
        post_parser.feed_data(POST_B)

    get()
    post()
    assert get_sink.done == 2 and len(get_sink.headers) == 7
    assert post_sink.done == 2 and b"".join(post_sink.body) == POST_BODY
    return {"httptools (llhttp, C; reused)": (get, post)}


def h11_cases() -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    import h11

    def run(data: bytes) -> None:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(data)
        while True:
            event = conn.next_event()
            if type(event) is h11.EndOfMessage:
                return
            if event is h11.NEED_DATA:
                raise AssertionError("message incomplete")

    def get() -> None:
        run(GET_A)
        run(GET_B)

    def post() -> None:
        run(POST)
        run(POST_B)

    return {"h11 (fresh connection)": (get, post)}


RESPONSE_FIELDS = (
    b"Date: Wed, 02 Dec 2026 12:00:00 GMT\r\n"
    b"Server: nginx/1.24.0\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Cache-Control: private, max-age=0\r\n"
    b"Set-Cookie: session=4f2a9c81e07b; Path=/; HttpOnly\r\n"
    b"Vary: Accept-Encoding\r\n"
    b"Connection: keep-alive\r\n"
)
RESPONSE_CL = (
    b"HTTP/1.1 200 OK\r\n" + RESPONSE_FIELDS + b"Content-Length: 26\r\n\r\n"
    b"abcdefghijklmnopqrstuvwxyz"
)
RESPONSE_CHUNKED = (
    b"HTTP/1.1 200 OK\r\n" + RESPONSE_FIELDS + b"Transfer-Encoding: chunked\r\n\r\n"
    b"10\r\n0123456789abcdef\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n5\r\nhello\r\n0\r\n\r\n"
)
RESPONSE_CHUNKED_BODY = b"0123456789abcdef" + b"abcdefghijklmnopqrstuvwxyz" + b"hello"


def _drain_response(parser: ResponseParser) -> int:
    """Parse one response to a GET as a client does; return the body size."""
    parser.expect("GET")
    head = parser.next_event()
    if not isinstance(head, Response):
        raise AssertionError("head incomplete")
    size = 0
    while True:
        event = parser.next_event()
        if isinstance(event, bytes):
            size += len(event)
        elif isinstance(event, EndOfMessage):
            return size
        elif event is None:
            raise AssertionError("message incomplete")


def response_cases() -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """name -> (Content-Length run, chunked run); each run parses two responses."""
    cases: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {}

    def treadle(data: bytes) -> Callable[[], None]:
        parser = ResponseParser()

        def run() -> None:
            parser.feed(data)
            _drain_response(parser)
            parser.feed(data)
            _drain_response(parser)

        return run

    cases["treadle (reused)"] = (treadle(RESPONSE_CL), treadle(RESPONSE_CHUNKED))
    if parser_module._scan_chunks is not None:
        cases["treadle, no C"] = (
            pure_python(treadle(RESPONSE_CL)),
            pure_python(treadle(RESPONSE_CHUNKED)),
        )
    try:
        import httptools
    except ImportError:
        print("httptools not installed: skipped")
    else:

        class Collector:
            """What a client keeps from llhttp's callbacks."""

            def __init__(self) -> None:
                self.headers: list[tuple[bytes, bytes]] = []
                self.body: list[bytes] = []
                self.reason = b""
                self.done = 0

            def on_message_begin(self) -> None:
                self.headers = []
                self.body = []

            def on_status(self, reason: bytes) -> None:
                self.reason = reason

            def on_header(self, name: bytes, value: bytes) -> None:
                self.headers.append((name, value))

            def on_body(self, body: bytes) -> None:
                self.body.append(body)

            def on_message_complete(self) -> None:
                self.done += 1

        def llhttp(data: bytes) -> tuple[Callable[[], None], Collector]:
            sink = Collector()
            parser = httptools.HttpResponseParser(sink)

            def run() -> None:
                parser.feed_data(data)
                parser.feed_data(data)

            return run, sink

        cl_run, cl_sink = llhttp(RESPONSE_CL)
        chunked_run, chunked_sink = llhttp(RESPONSE_CHUNKED)
        cl_run()
        chunked_run()
        assert cl_sink.done == 2 and len(cl_sink.headers) == 8
        assert b"".join(chunked_sink.body) == RESPONSE_CHUNKED_BODY
        cases["httptools (llhttp, C; reused)"] = (cl_run, chunked_run)
    try:
        import h11
    except ImportError:
        print("h11 not installed: skipped")
    else:

        def h11_run(data: bytes) -> Callable[[], None]:
            def one() -> None:
                conn = h11.Connection(h11.CLIENT)
                conn.send(h11.Request(method="GET", target="/", headers=[("Host", "a")]))
                conn.send(h11.EndOfMessage())
                conn.receive_data(data)
                while True:
                    event = conn.next_event()
                    if type(event) is h11.EndOfMessage:
                        return
                    if event is h11.NEED_DATA:
                        raise AssertionError("message incomplete")

            def run() -> None:
                one()
                one()

            return run

        cases["h11 (fresh connection)"] = (h11_run(RESPONSE_CL), h11_run(RESPONSE_CHUNKED))
    return cases


def best_us(fn: Callable[[], object], repeat: int, messages_per_call: int = 2) -> float:
    """Microseconds per message, best of `repeat` timings of about 0.2 s."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    best = min(timer.repeat(repeat=repeat, number=number))
    return best / number / messages_per_call * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="timings per case (best is kept)")
    args = ap.parse_args()

    # Sanity: every Treadle case sees the right messages.
    check = RequestParser()
    check.feed(POST)
    assert _drain(check) == len(POST_BODY)
    check.feed(GET_A)
    assert _drain(check) == 0 and check.next_event() is None

    cases = treadle_cases()
    for name, make in (("httptools", httptools_cases), ("h11", h11_cases)):
        try:
            cases.update(make())
        except ImportError:
            print(f"{name} not installed: skipped")
    results = {
        name: (best_us(get, args.repeat), best_us(post, args.repeat))
        for name, (get, post) in cases.items()
    }
    ref = results.get("httptools (llhttp, C; reused)")
    print(f"Python {sys.version.split()[0]}: microseconds per message (best of {args.repeat})")
    print(f"  {'parser':<32} {'GET (7 fields)':>15} {'chunked POST':>14}", end="")
    print("   ratio to httptools (GET, POST; >1 is slower)" if ref else "")
    for name, (get_us, post_us) in results.items():
        line = f"  {name:<32} {get_us:>12.2f} us {post_us:>11.2f} us"
        if ref:
            line += f"   {get_us / ref[0]:5.2f}x {post_us / ref[1]:5.2f}x"
        print(line)

    check_response = ResponseParser()
    check_response.feed(RESPONSE_CHUNKED + RESPONSE_CL)
    assert _drain_response(check_response) == len(RESPONSE_CHUNKED_BODY)
    assert _drain_response(check_response) == 26
    responses = {
        name: (best_us(cl, args.repeat), best_us(chunked, args.repeat))
        for name, (cl, chunked) in response_cases().items()
    }
    ref = responses.get("httptools (llhttp, C; reused)")
    print(f"  {'response parser':<32} {'200 + length':>15} {'chunked 200':>14}")
    for name, (cl_us, chunked_us) in responses.items():
        line = f"  {name:<32} {cl_us:>12.2f} us {chunked_us:>11.2f} us"
        if ref:
            line += f"   {cl_us / ref[0]:5.2f}x {chunked_us / ref[1]:5.2f}x"
        print(line)


if __name__ == "__main__":
    main()
