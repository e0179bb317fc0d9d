"""Run the same request (or response) bytes through Treadle's parsers, llhttp and h11.

Each `parse_*` function returns a `Verdict`: whether the bytes were accepted,
the messages parsed (method, target, version, headers, body, trailers), and for
Treadle the `HTTPError` that refused them. Header names are compared lower-cased
(h11 lowers them) and values with outer whitespace stripped (llhttp keeps
trailing whitespace in some versions). Parsing stops, as a server would, after a
message that closes the connection or switches protocols.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h11
import httptools

from treadle.http import (
    EndOfMessage,
    Headers,
    HTTPError,
    InformationalResponse,
    ParserState,
    Request,
    RequestParser,
    Response,
    ResponseError,
    ResponseLimits,
    ResponseParser,
)
from treadle.http.parser import Limits

# Peers have their own defaults; the differential tests are about grammar, not
# limits, so every parser gets room enough.
BIG_LIMITS = Limits(max_body_size=1 << 30)


@dataclass(frozen=True)
class Message:
    """A parsed request, normalized for comparison."""

    method: str
    target: str
    version: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    trailers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass
class Verdict:
    """What one parser made of some bytes."""

    accepted: bool
    messages: list[Message] = field(default_factory=list)
    complete: bool = True  # False: the bytes ended inside a message
    error: HTTPError | None = None
    detail: str = ""


def _norm(headers: list[tuple[bytes, bytes]]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((n.lower(), v.strip(b" \t")) for n, v in headers)


def parse_treadle(data: bytes | list[bytes], limits: Limits = BIG_LIMITS) -> Verdict:
    """Treadle's verdict; `data` may be a list of pieces fed one by one."""
    pieces = [data] if isinstance(data, bytes) else data
    parser = RequestParser(limits)
    messages: list[Message] = []
    head: Request | None = None
    body: list[bytes] = []
    try:
        for piece in pieces:
            parser.feed(piece)
            while (event := parser.next_event()) is not None:
                if isinstance(event, Request):
                    head, body = event, []
                elif isinstance(event, bytes):
                    body.append(event)
                else:
                    assert isinstance(event, EndOfMessage) and head is not None
                    messages.append(
                        Message(
                            head.method,
                            head.target,
                            f"{head.version[0]}.{head.version[1]}",
                            _norm(head.headers.raw),
                            b"".join(body),
                            _norm(event.trailers.raw),
                        )
                    )
                    head = None
    except HTTPError as exc:
        return Verdict(False, messages, error=exc, detail=exc.detail)
    # Empty lines skipped after the last message do not start a new one.
    complete = head is None and not parser.trailing_data
    if parser.state in (ParserState.CLOSED, ParserState.PAUSED):
        complete = True
    return Verdict(True, messages, complete=complete)


class _Collector:
    """httptools callbacks, collecting one message at a time."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.in_body = False
        self.parser: httptools.HttpRequestParser | None = None
        self.version = ""
        self.method = ""

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.trailers = []
        self.body = []
        self.in_body = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        (self.trailers if self.in_body else self.headers).append((name, value))

    def on_headers_complete(self) -> None:
        self.in_body = True
        assert self.parser is not None
        self.version = self.parser.get_http_version()
        self.method = self.parser.get_method().decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.messages.append(
            Message(
                self.method,
                self.url.decode("latin-1"),
                self.version,
                _norm(self.headers),
                b"".join(self.body),
                _norm(self.trailers),
            )
        )


def parse_llhttp(data: bytes | list[bytes]) -> Verdict:
    """llhttp's verdict, through httptools, in its default (strict) mode."""
    pieces = [data] if isinstance(data, bytes) else data
    collector = _Collector()
    parser = httptools.HttpRequestParser(collector)
    collector.parser = parser
    try:
        for piece in pieces:
            parser.feed_data(piece)
    except httptools.HttpParserUpgrade:
        return Verdict(True, collector.messages)
    except httptools.HttpParserError as exc:
        return Verdict(False, collector.messages, detail=str(exc))
    complete = not collector.in_body and collector.url == b""
    if collector.messages and not complete:
        # A message completed and nothing else started.
        complete = collector.messages[-1].target == collector.url.decode("latin-1") and (
            not collector.in_body or collector.messages[-1].body == b"".join(collector.body)
        )
    return Verdict(True, collector.messages, complete=complete)


def parse_h11(data: bytes | list[bytes]) -> Verdict:
    """h11's verdict, answering each request so pipelined ones come out too."""
    pieces = [data] if isinstance(data, bytes) else data
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
    messages: list[Message] = []
    head: h11.Request | None = None
    body: list[bytes] = []
    try:
        for piece in pieces:
            if not piece:
                continue  # receive_data(b"") means EOF to h11
            conn.receive_data(piece)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    if event is h11.PAUSED and conn.our_state is h11.SEND_RESPONSE:
                        break
                    break
                if isinstance(event, h11.Request):
                    head, body = event, []
                elif isinstance(event, h11.Data):
                    body.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    assert head is not None
                    messages.append(
                        Message(
                            head.method.decode("latin-1"),
                            head.target.decode("latin-1"),
                            head.http_version.decode("latin-1"),
                            _norm([(bytes(n), bytes(v)) for n, v in head.headers.raw_items()]),
                            b"".join(body),
                            _norm([(bytes(n), bytes(v)) for n, v in event.headers.raw_items()]),
                        )
                    )
                    head = None
                    if conn.their_state in (h11.MUST_CLOSE, h11.MIGHT_SWITCH_PROTOCOL):
                        return Verdict(True, messages)
                    conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                    conn.send(h11.EndOfMessage())
                    if conn.our_state is h11.MUST_CLOSE:
                        return Verdict(True, messages)
                    conn.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    break
    except h11.RemoteProtocolError as exc:
        return Verdict(False, messages, detail=str(exc))
    except h11.LocalProtocolError as exc:  # the request was one h11 cannot answer
        return Verdict(True, messages, detail=str(exc))
    complete = head is None and conn.their_state in (h11.IDLE, h11.DONE, h11.MUST_CLOSE)
    if conn.their_state is h11.IDLE and conn.trailing_data[0]:
        complete = False
    return Verdict(True, messages, complete=complete)


# -- responses ------------------------------------------------------------------------
#
# The same comparison for the response parser, on the client's side of a
# connection: Treadle's ResponseParser, llhttp's response parser (through
# httptools) and h11 in the client role. httptools cannot be told the request
# method (so no HEAD or CONNECT) nor the end of the connection (so a body read
# until the close never ends there); none of the three gets the end of the
# connection here, and a message still in progress is compared as far as it
# went (`partial`). Informational (1xx) responses are messages without a body.

BIG_RESPONSE_LIMITS = ResponseLimits(max_header_block=1 << 20, max_headers=10_000)


@dataclass(frozen=True)
class ResponseMessage:
    """A parsed response, normalized for comparison."""

    status: int
    reason: str
    version: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes = b""
    trailers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass
class ResponseVerdict:
    """What one parser made of some response bytes."""

    accepted: bool
    messages: list[ResponseMessage] = field(default_factory=list)
    partial: ResponseMessage | None = None  # the message in progress, as far as it went
    complete: bool = True  # False: the bytes ended inside a head
    error: ResponseError | None = None
    detail: str = ""


def parse_treadle_response(
    data: bytes | list[bytes],
    methods: list[str] | tuple[str, ...] = ("GET",),
    limits: ResponseLimits = BIG_RESPONSE_LIMITS,
) -> ResponseVerdict:
    """Treadle's verdict on responses to requests with `methods`."""
    pieces = [data] if isinstance(data, bytes) else data
    parser = ResponseParser(limits)
    for method in methods:
        parser.expect(method)
    messages: list[ResponseMessage] = []
    head: Response | None = None
    body: list[bytes] = []
    try:
        for piece in pieces:
            parser.feed(piece)
            while (event := parser.next_event()) is not None:
                if isinstance(event, InformationalResponse):
                    messages.append(
                        ResponseMessage(
                            event.status,
                            event.reason,
                            f"{event.version[0]}.{event.version[1]}",
                            _norm(event.headers.raw),
                        )
                    )
                elif isinstance(event, Response):
                    head, body = event, []
                elif isinstance(event, bytes):
                    body.append(event)
                else:
                    assert head is not None
                    messages.append(_treadle_message(head, b"".join(body), event.trailers))
                    head = None
    except ResponseError as exc:
        return ResponseVerdict(False, messages, error=exc, detail=exc.detail)
    partial = None if head is None else _treadle_message(head, b"".join(body), Headers())
    complete = not (parser.state == ParserState.HEAD and parser.trailing_data)
    return ResponseVerdict(True, messages, partial, complete)


def _treadle_message(head: Response, body: bytes, trailers: Headers) -> ResponseMessage:
    return ResponseMessage(
        head.status,
        head.reason,
        f"{head.version[0]}.{head.version[1]}",
        _norm(head.headers.raw),
        body,
        _norm(trailers.raw),
    )


class _ResponseCollector:
    """httptools' response callbacks, collecting one message at a time."""

    def __init__(self) -> None:
        self.messages: list[ResponseMessage] = []
        self.parser: httptools.HttpResponseParser | None = None
        self.started = False
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.in_body = False
        self.status = 0
        self.version = ""

    def on_message_begin(self) -> None:
        self.started = True
        self.reason = b""
        self.headers = []
        self.trailers = []
        self.body = []
        self.in_body = False

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        (self.trailers if self.in_body else self.headers).append((name, value))

    def on_headers_complete(self) -> None:
        self.in_body = True
        assert self.parser is not None
        self.status = self.parser.get_status_code()
        self.version = self.parser.get_http_version()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.messages.append(self.current())
        self.started = False

    def current(self) -> ResponseMessage:
        return ResponseMessage(
            self.status,
            self.reason.decode("latin-1"),
            self.version,
            _norm(self.headers),
            b"".join(self.body),
            _norm(self.trailers),
        )


def parse_llhttp_response(data: bytes | list[bytes]) -> ResponseVerdict:
    """llhttp's verdict on responses to GET requests, in its strict mode."""
    pieces = [data] if isinstance(data, bytes) else data
    collector = _ResponseCollector()
    parser = httptools.HttpResponseParser(collector)
    collector.parser = parser
    try:
        for piece in pieces:
            parser.feed_data(piece)
    except httptools.HttpParserUpgrade:
        return ResponseVerdict(True, collector.messages)
    except httptools.HttpParserError as exc:
        return ResponseVerdict(False, collector.messages, detail=str(exc))
    partial = collector.current() if collector.started and collector.in_body else None
    complete = not (collector.started and not collector.in_body)
    return ResponseVerdict(True, collector.messages, partial, complete)


def parse_h11_response(
    data: bytes | list[bytes], methods: list[str] | tuple[str, ...] = ("GET",)
) -> ResponseVerdict:
    """h11's verdict, as a client that sent requests with `methods` one after
    another (h11 sends the next request once the last response has ended)."""
    pieces = [data] if isinstance(data, bytes) else data
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=1 << 20)
    todo = list(methods)

    def send_next() -> None:
        method = todo.pop(0)
        target = "a:443" if method == "CONNECT" else "/"
        headers = [("Host", "a")]
        if method == "GET":  # so that a 101 answers a proposal, as h11 requires
            headers += [("Connection", "upgrade"), ("Upgrade", "x")]
        conn.send(h11.Request(method=method, target=target, headers=headers))
        conn.send(h11.EndOfMessage())

    send_next()
    messages: list[ResponseMessage] = []
    head: h11.Response | None = None
    body: list[bytes] = []
    try:
        for piece in pieces:
            if not piece:
                continue  # receive_data(b"") means EOF to h11
            conn.receive_data(piece)
            while True:
                event = conn.next_event()
                if event is h11.PAUSED and head is not None:
                    # A CONNECT's 2xx: h11 switches without an EndOfMessage.
                    messages.append(_h11_message(head, b"", []))
                    return ResponseVerdict(True, messages)
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    break
                if isinstance(event, h11.InformationalResponse):
                    messages.append(_h11_message(event, b"", []))
                    if event.status_code == 101:
                        return ResponseVerdict(True, messages)
                elif isinstance(event, h11.Response):
                    head, body = event, []
                elif isinstance(event, h11.Data):
                    body.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    assert head is not None
                    messages.append(_h11_message(head, b"".join(body), event.headers.raw_items()))
                    head = None
                    if conn.their_state is not h11.DONE or conn.our_state is not h11.DONE:
                        return ResponseVerdict(True, messages)  # closing or switched
                    conn.start_next_cycle()
                    if not todo:
                        # h11 would read further bytes as a response to nothing.
                        return ResponseVerdict(True, messages)
                    send_next()
    except h11.RemoteProtocolError as exc:
        return ResponseVerdict(False, messages, detail=str(exc))
    partial = None if head is None else _h11_message(head, b"".join(body), [])
    complete = head is not None or not conn.trailing_data[0]
    return ResponseVerdict(True, messages, partial, complete)


def _h11_message(
    head: h11.Response | h11.InformationalResponse,
    body: bytes,
    trailers: list[tuple[bytes, bytes]],
) -> ResponseMessage:
    return ResponseMessage(
        head.status_code,
        bytes(head.reason).decode("latin-1"),
        bytes(head.http_version).decode("latin-1"),
        _norm([(bytes(n), bytes(v)) for n, v in head.headers.raw_items()]),
        body,
        _norm([(bytes(n), bytes(v)) for n, v in trailers]),
    )
