"""HTTP errors and redirects as exceptions that are also responses.

`raise web.HTTPNotFound()` from a handler (or `return` it) and the client gets
`404 Not Found` with the plain body `404: Not Found`. Each class is both a
`Response` and an `Exception`, as in aiohttp, so middlewares can catch them
and handlers can customize headers and text. Redirects require a location and
refuse one with CR or LF in it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from .response import HeadersLike, Response

__all__ = [
    "HTTPAccepted",
    "HTTPBadGateway",
    "HTTPBadRequest",
    "HTTPClientError",
    "HTTPConflict",
    "HTTPCreated",
    "HTTPError",
    "HTTPException",
    "HTTPExpectationFailed",
    "HTTPFailedDependency",
    "HTTPForbidden",
    "HTTPFound",
    "HTTPGatewayTimeout",
    "HTTPGone",
    "HTTPInsufficientStorage",
    "HTTPInternalServerError",
    "HTTPLengthRequired",
    "HTTPMethodNotAllowed",
    "HTTPMisdirectedRequest",
    "HTTPMove",
    "HTTPMovedPermanently",
    "HTTPMultipleChoices",
    "HTTPNetworkAuthenticationRequired",
    "HTTPNoContent",
    "HTTPNonAuthoritativeInformation",
    "HTTPNotAcceptable",
    "HTTPNotExtended",
    "HTTPNotFound",
    "HTTPNotImplemented",
    "HTTPNotModified",
    "HTTPOk",
    "HTTPPartialContent",
    "HTTPPaymentRequired",
    "HTTPPermanentRedirect",
    "HTTPPreconditionFailed",
    "HTTPPreconditionRequired",
    "HTTPProxyAuthenticationRequired",
    "HTTPRedirection",
    "HTTPRequestEntityTooLarge",
    "HTTPRequestHeaderFieldsTooLarge",
    "HTTPRequestRangeNotSatisfiable",
    "HTTPRequestTimeout",
    "HTTPRequestURITooLong",
    "HTTPResetContent",
    "HTTPSeeOther",
    "HTTPServerError",
    "HTTPServiceUnavailable",
    "HTTPSuccessful",
    "HTTPTemporaryRedirect",
    "HTTPTooManyRequests",
    "HTTPUnauthorized",
    "HTTPUnavailableForLegalReasons",
    "HTTPUnprocessableEntity",
    "HTTPUnsupportedMediaType",
    "HTTPUpgradeRequired",
    "HTTPUseProxy",
    "HTTPVariantAlsoNegotiates",
    "HTTPVersionNotSupported",
]


class HTTPException(Response, Exception):
    """Base of every HTTP status exception; `status_code` names the status."""

    status_code: ClassVar[int] = -1
    #: Statuses whose responses carry no body (204, 304).
    empty_body: ClassVar[bool] = False

    def __init__(
        self,
        *,
        headers: HeadersLike | None = None,
        reason: str | None = None,
        body: bytes | None = None,
        text: str | None = None,
        content_type: str | None = None,
    ) -> None:
        if self.status_code < 100:
            raise TypeError(
                f"{type(self).__name__} is an abstract class; raise a concrete status, "
                "such as HTTPNotFound"
            )
        default_text = body is None and text is None and not self.empty_body
        if (
            default_text
            and headers is None
            and (content_type is None or "charset=" not in content_type.lower())
        ):
            # The common case (`raise HTTPNotFound()`): the plain body is known
            # now, so the response is made once, without a headers mapping.
            Response.__init__(
                self,
                status=self.status_code,
                reason=reason,
                text="",
                content_type=content_type,
            )
            self._body = f"{self.status_code}: {self.reason}".encode()
            default_text = False
        else:
            Response.__init__(
                self,
                status=self.status_code,
                headers=headers,
                reason=reason,
                body=body,
                text=text,
                content_type=content_type,
            )
        Exception.__init__(self, self.reason)
        if default_text:
            self.text = f"{self.status}: {self.reason}"

    def __str__(self) -> str:
        return self.reason

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.reason}>"

    __hash__ = Response.__hash__


class HTTPError(HTTPException):
    """Base of the 4xx and 5xx exceptions."""


class HTTPRedirection(HTTPException):
    """Base of the 3xx exceptions."""


class HTTPSuccessful(HTTPException):
    """Base of the 2xx exceptions."""


class HTTPOk(HTTPSuccessful):
    status_code = 200


class HTTPCreated(HTTPSuccessful):
    status_code = 201


class HTTPAccepted(HTTPSuccessful):
    status_code = 202


class HTTPNonAuthoritativeInformation(HTTPSuccessful):
    status_code = 203


class HTTPNoContent(HTTPSuccessful):
    status_code = 204
    empty_body = True


class HTTPResetContent(HTTPSuccessful):
    status_code = 205
    empty_body = True


class HTTPPartialContent(HTTPSuccessful):
    status_code = 206


class HTTPMove(HTTPRedirection):
    """A redirect: `location` is required and becomes the `Location` header."""

    def __init__(
        self,
        location: str,
        *,
        headers: HeadersLike | None = None,
        reason: str | None = None,
        body: bytes | None = None,
        text: str | None = None,
        content_type: str | None = None,
    ) -> None:
        location = str(location)
        if not location:
            raise ValueError("HTTP redirects need a location to redirect to.")
        if any(c in location for c in "\r\n\x00"):
            raise ValueError("a redirect location must not contain CR, LF or NUL")
        super().__init__(
            headers=headers, reason=reason, body=body, text=text, content_type=content_type
        )
        self.headers["Location"] = location
        self.location = location


class HTTPMultipleChoices(HTTPMove):
    status_code = 300


class HTTPMovedPermanently(HTTPMove):
    status_code = 301


class HTTPFound(HTTPMove):
    status_code = 302


class HTTPSeeOther(HTTPMove):
    status_code = 303


class HTTPNotModified(HTTPRedirection):
    status_code = 304
    empty_body = True


class HTTPUseProxy(HTTPMove):
    status_code = 305


class HTTPTemporaryRedirect(HTTPMove):
    status_code = 307


class HTTPPermanentRedirect(HTTPMove):
    status_code = 308


class HTTPClientError(HTTPError):
    """Base of the 4xx exceptions."""


class HTTPBadRequest(HTTPClientError):
    status_code = 400


class HTTPUnauthorized(HTTPClientError):
    status_code = 401


class HTTPPaymentRequired(HTTPClientError):
    status_code = 402


class HTTPForbidden(HTTPClientError):
    status_code = 403


class HTTPNotFound(HTTPClientError):
    status_code = 404


class HTTPMethodNotAllowed(HTTPClientError):
    """405, with the `Allow` header listing `allowed_methods`."""

    status_code = 405

    def __init__(
        self,
        method: str,
        allowed_methods: Iterable[str],
        *,
        headers: HeadersLike | None = None,
        reason: str | None = None,
        body: bytes | None = None,
        text: str | None = None,
        content_type: str | None = None,
    ) -> None:
        allowed = sorted(set(allowed_methods))
        super().__init__(
            headers=headers, reason=reason, body=body, text=text, content_type=content_type
        )
        self.headers["Allow"] = ", ".join(allowed)
        self.method = method.upper()
        self.allowed_methods = set(allowed)


class HTTPNotAcceptable(HTTPClientError):
    status_code = 406


class HTTPProxyAuthenticationRequired(HTTPClientError):
    status_code = 407


class HTTPRequestTimeout(HTTPClientError):
    status_code = 408


class HTTPConflict(HTTPClientError):
    status_code = 409


class HTTPGone(HTTPClientError):
    status_code = 410


class HTTPLengthRequired(HTTPClientError):
    status_code = 411


class HTTPPreconditionFailed(HTTPClientError):
    status_code = 412


class HTTPRequestEntityTooLarge(HTTPClientError):
    """413; says how large the body was allowed to be."""

    status_code = 413

    def __init__(self, max_size: int, actual_size: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault(
            "text",
            f"Maximum request body size {max_size} exceeded"
            + (f", actual body size {actual_size}" if actual_size is not None else ""),
        )
        super().__init__(**kwargs)


class HTTPRequestURITooLong(HTTPClientError):
    status_code = 414


class HTTPUnsupportedMediaType(HTTPClientError):
    status_code = 415


class HTTPRequestRangeNotSatisfiable(HTTPClientError):
    status_code = 416


class HTTPExpectationFailed(HTTPClientError):
    status_code = 417


class HTTPMisdirectedRequest(HTTPClientError):
    status_code = 421


class HTTPUnprocessableEntity(HTTPClientError):
    status_code = 422


class HTTPFailedDependency(HTTPClientError):
    status_code = 424


class HTTPUpgradeRequired(HTTPClientError):
    status_code = 426


class HTTPPreconditionRequired(HTTPClientError):
    status_code = 428


class HTTPTooManyRequests(HTTPClientError):
    status_code = 429


class HTTPRequestHeaderFieldsTooLarge(HTTPClientError):
    status_code = 431


class HTTPUnavailableForLegalReasons(HTTPClientError):
    """451, with a `Link` to the authority that required it."""

    status_code = 451

    def __init__(self, link: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if link:
            if any(c in link for c in "\r\n\x00"):
                raise ValueError("link must not contain CR, LF or NUL")
            self.headers["Link"] = f'<{link}>; rel="blocked-by"'
        self.link = link


class HTTPServerError(HTTPError):
    """Base of the 5xx exceptions."""


class HTTPInternalServerError(HTTPServerError):
    status_code = 500


class HTTPNotImplemented(HTTPServerError):
    status_code = 501


class HTTPBadGateway(HTTPServerError):
    status_code = 502


class HTTPServiceUnavailable(HTTPServerError):
    status_code = 503


class HTTPGatewayTimeout(HTTPServerError):
    status_code = 504


class HTTPVersionNotSupported(HTTPServerError):
    status_code = 505


class HTTPVariantAlsoNegotiates(HTTPServerError):
    status_code = 506


class HTTPInsufficientStorage(HTTPServerError):
    status_code = 507


class HTTPNotExtended(HTTPServerError):
    status_code = 510


class HTTPNetworkAuthenticationRequired(HTTPServerError):
    status_code = 511


def _simple_classes() -> dict[int, type[HTTPException]]:
    """Status -> exception class, for the classes built from a text alone."""
    found: dict[int, type[HTTPException]] = {}
    pending: list[type[HTTPException]] = [HTTPException]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.status_code >= 100 and cls.__init__ is HTTPException.__init__:
            found.setdefault(cls.status_code, cls)
    return found


_BY_STATUS = _simple_classes()


def exception_for_status(status: int, text: str | None = None) -> HTTPException:
    """An HTTP exception with `status` and `text` as its body: the class named
    for the status where one takes a text alone (HTTPBadRequest for 400...),
    else a subclass of HTTPClientError/HTTPServerError made for the status
    (HTTPRequestEntityTooLarge, say, wants sizes this path does not know)."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        base = HTTPClientError if status < 500 else HTTPServerError
        cls = type(f"HTTPStatus{status}", (base,), {"status_code": status})
        _BY_STATUS[status] = cls
    return cls(text=text)
