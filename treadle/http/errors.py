"""The one exception the HTTP layer raises for bad input from the network.

A parse failure is not a bug in Treadle or in the application: it is the peer
sending something HTTP does not allow. So the parser raises `HTTPError`, which
carries the status the server must answer with (400, 413, 414, 431, 501, 505)
and a short reason for the log. The server protocol turns it into a response with
`Connection: close` and closes the connection; nothing else is affected.

The response parser, on a client, has nobody to answer: it raises a
`ResponseError` instead, a `ResponseHeadError` when the status line or the
header section broke a rule and a `ResponsePayloadError` when the body did (the
client maps them to aiohttp's `ClientResponseError` and `ClientPayloadError`).
Either way the connection must not carry another request.

Misuse of the API by an application (a header value with CR/LF, writing after
`write_eof`) is a different kind of error and raises `ValueError` or
`RuntimeError` naming the problem: it is a bug to fix, not a peer to answer.
"""

from __future__ import annotations

from http import HTTPStatus

__all__ = ["HTTPError", "ResponseError", "ResponseHeadError", "ResponsePayloadError"]


class HTTPError(Exception):
    """Bad input from the peer: answer `status` and close the connection.

    `status` is the HTTP status code to send; `detail` says which rule was broken
    (it goes to the log and to the error response's body, so it never contains
    the peer's bytes beyond a short, escaped excerpt).
    """

    __slots__ = ("detail", "status")

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail

    @property
    def reason(self) -> str:
        """The standard reason phrase for `status`, e.g. 'Bad Request'."""
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return "Error"

    def __str__(self) -> str:
        return f"{self.status} {self.reason}: {self.detail}"


class ResponseError(Exception):
    """A response broke HTTP: the client must close the connection, and the
    parser that raised this parses nothing more.

    `kind` is 'head' (the status line or the header section: no usable
    response) or 'body' (the head was delivered, its body was not);
    `detail` says which rule was broken (with at most a short, escaped
    excerpt of the peer's bytes).
    """

    __slots__ = ("detail",)
    kind: str = "head"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __str__(self) -> str:
        return f"invalid response {self.kind}: {self.detail}"


class ResponseHeadError(ResponseError):
    """The status line or the header section of a response broke a rule."""

    __slots__ = ()
    kind = "head"


class ResponsePayloadError(ResponseError):
    """The body of a response broke a rule, was cut short or is over the limit."""

    __slots__ = ()
    kind = "body"
