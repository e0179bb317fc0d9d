"""The one exception the HTTP layer raises for bad input from the network.

A parse failure is not a bug in Treadle or in the application: it is the peer
sending something HTTP does not allow. So the parser raises `HTTPError`, which
carries the status the server must answer with (400, 413, 414, 431, 501, 505)
and a short reason for the log. The server protocol turns it into a response with
`Connection: close` and closes the connection; nothing else is affected.

Misuse of the API by an application (a header value with CR/LF, writing after
`write_eof`) is a different kind of error and raises `ValueError` or
`RuntimeError` naming the problem: it is a bug to fix, not a peer to answer.
"""

from __future__ import annotations

from http import HTTPStatus

__all__ = ["HTTPError"]


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
