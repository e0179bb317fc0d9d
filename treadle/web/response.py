"""Responses: `Response` (a whole body), `StreamResponse` (written piece by piece),
`json_response`, cookies and compression.

A handler returns a response; the framework sends it. A `Response` that was not
prepared goes out through the HTTP layer's fast path: head and body in one
`transport.write`. `StreamResponse.prepare()` sends the head and lets the
handler `write()` the body; without a `Content-Length` it is sent chunked.

The HTTP layer owns framing (`Content-Length`, `Transfer-Encoding`), `Date` and
`Connection`, and refuses header values with CR or LF (response splitting), so
a response can never smuggle a second one onto the wire.
"""

from __future__ import annotations

import datetime
import email.utils
import http
import json
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from http.cookies import Morsel, SimpleCookie
from typing import TYPE_CHECKING, Any

from .multidict import CIMultiDict

if TYPE_CHECKING:
    from ..http import ResponseWriter
    from .request import Request

__all__ = [
    "ContentCoding",
    "Response",
    "StreamResponse",
    "json_response",
]

HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]] | CIMultiDict[str]

#: What `set_secure_cookie()` adds to `set_cookie()`: not sent over plain HTTP,
#: not readable from JavaScript, not sent on cross-site subrequests.
SECURE_COOKIE_DEFAULTS: dict[str, Any] = {"secure": True, "httponly": True, "samesite": "Lax"}

# Framing fields the HTTP layer writes itself; a handler's values are taken
# as hints (Content-Length) or dropped (Transfer-Encoding).
_FRAMING = ("Content-Length", "Transfer-Encoding")


class ContentCoding:
    """The codings `enable_compression()` can use, best first."""

    gzip = "gzip"
    deflate = "deflate"
    all = (gzip, deflate)


# Reason phrases by status, looked up per response: an enum lookup is not free.
_REASONS: dict[int, str] = {int(s): s.phrase for s in http.HTTPStatus}


def _reason(status: int) -> str:
    return _REASONS.get(status, "")


def _parse_codings(accept: str) -> dict[str, float]:
    """`Accept-Encoding` as {coding: q}; malformed parts are ignored."""
    out: dict[str, float] = {}
    for part in accept.split(","):
        name, _, params = part.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        out[name] = q
    return out


def _http_date(value: datetime.datetime | float | int | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime.datetime):
        return email.utils.format_datetime(value.astimezone(datetime.UTC), usegmt=True)
    return email.utils.formatdate(float(value), usegmt=True)


def _init_status(response: StreamResponse, status: int, reason: str | None) -> None:
    if reason is None and type(status) is int and 100 <= status <= 999:
        # The common case, without set_status()'s checks of a reason.
        response._status = status
        response._reason = _REASONS.get(status, "")
    else:
        response._status = 200
        response._reason = ""
        response.set_status(status, reason)


class StreamResponse:
    """A response whose body the handler writes: `await resp.prepare(request)`,
    then `await resp.write(data)`..., then `await resp.write_eof()`."""

    # Defaults as class attributes: a response sets only what differs, so
    # making one (per request) costs a few stores, not a dozen.
    _cookies: SimpleCookie | None = None
    _keep_alive: bool | None = None
    _chunked = False
    _compression: str | bool | None = None  # None: off; True: by Accept-Encoding
    _writer: ResponseWriter | None = None
    _compressor: Any = None
    _eof_sent = False
    _request: Request | None = None
    # The headers are made on first use: until then a response with only a
    # Content-Type (most of them) keeps its value in `_ctype`.
    _hdrs: CIMultiDict[str] | None = None
    _ctype: str | None = None

    def __init__(
        self,
        *,
        status: int = 200,
        reason: str | None = None,
        headers: HeadersLike | None = None,
    ) -> None:
        _init_status(self, status, reason)
        if headers:
            self._hdrs = CIMultiDict(headers)

    # -- status and headers --------------------------------------------------------------

    @property
    def status(self) -> int:
        return self._status

    @property
    def reason(self) -> str:
        return self._reason

    def set_status(self, status: int, reason: str | None = None) -> None:
        """Change the status (and reason phrase) before the head is sent."""
        if self._writer is not None:
            raise RuntimeError(
                "Cannot change the response status code after the headers have been sent"
            )
        if not isinstance(status, int) or not 100 <= status <= 999:
            raise ValueError(f"status must be an int in 100..999, not {status!r}")
        self._status = status
        if reason is not None and ("\r" in reason or "\n" in reason):
            raise ValueError("reason phrase must not contain CR or LF")
        self._reason = reason if reason is not None else _reason(status)

    @property
    def _headers(self) -> CIMultiDict[str]:
        headers = self._hdrs
        if headers is None:
            headers = CIMultiDict()
            if self._ctype is not None:
                headers._items.append(("content-type", "Content-Type", self._ctype))
            self._hdrs = headers
        return headers

    @property
    def headers(self) -> CIMultiDict[str]:
        return self._headers

    @property
    def content_type(self) -> str:
        """The media type of `Content-Type`, without parameters."""
        value = self._headers.get("Content-Type", "")
        return value.partition(";")[0].strip()

    @content_type.setter
    def content_type(self, value: str) -> None:
        charset = self.charset
        self._headers["Content-Type"] = f"{value}; charset={charset}" if charset else value

    @property
    def charset(self) -> str | None:
        value = self._headers.get("Content-Type", "")
        for param in value.split(";")[1:]:
            key, _, v = param.partition("=")
            if key.strip().lower() == "charset":
                return v.strip().strip('"').lower() or None
        return None

    @charset.setter
    def charset(self, value: str | None) -> None:
        ctype = self.content_type or "application/octet-stream"
        if ctype == "application/octet-stream" and value:
            raise RuntimeError(
                "Setting charset for application/octet-stream doesn't make sense, "
                "setup content_type first"
            )
        self._headers["Content-Type"] = f"{ctype}; charset={value.lower()}" if value else ctype

    @property
    def content_length(self) -> int | None:
        value = self._headers.get("Content-Length")
        return int(value) if value is not None and value.isdigit() else None

    @content_length.setter
    def content_length(self, value: int | None) -> None:
        if value is None:
            self._headers.pop("Content-Length", None)
            return
        if self._chunked:
            raise RuntimeError("You can't set content length when chunked encoding is enabled")
        self._headers["Content-Length"] = str(int(value))

    @property
    def last_modified(self) -> datetime.datetime | None:
        value = self._headers.get("Last-Modified")
        if value is None:
            return None
        try:
            return email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None

    @last_modified.setter
    def last_modified(self, value: datetime.datetime | float | int | str | None) -> None:
        if value is None:
            self._headers.pop("Last-Modified", None)
        else:
            self._headers["Last-Modified"] = _http_date(value)

    @property
    def etag(self) -> str | None:
        value = self._headers.get("ETag")
        if value is None:
            return None
        return value.removeprefix("W/").strip('"')

    @etag.setter
    def etag(self, value: str | None) -> None:
        if value is None:
            self._headers.pop("ETag", None)
            return
        if '"' in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
            raise ValueError(f"invalid ETag value {value!r}")
        self._headers["ETag"] = f'"{value}"'

    # -- connection ----------------------------------------------------------------------

    @property
    def keep_alive(self) -> bool | None:
        return self._keep_alive

    def force_close(self) -> None:
        """Close the connection after this response."""
        self._keep_alive = False

    @property
    def prepared(self) -> bool:
        return self._writer is not None

    @property
    def chunked(self) -> bool:
        return self._chunked

    def enable_chunked_encoding(self) -> None:
        """Send the body chunked (the default when no length is known)."""
        if "Content-Length" in self._headers:
            raise RuntimeError("You can't enable chunked encoding when a content length is set")
        self._chunked = True

    def enable_compression(self, force: str | bool | None = None) -> None:
        """Compress the body with gzip or deflate, as the client's
        `Accept-Encoding` allows (or with the coding `force` names)."""
        if force is not None and force is not True and force not in ContentCoding.all:
            raise ValueError(f"unknown content coding {force!r}; use one of {ContentCoding.all}")
        self._compression = force if force is not None else True

    # -- cookies -------------------------------------------------------------------------

    @property
    def cookies(self) -> SimpleCookie:
        if self._cookies is None:
            self._cookies = SimpleCookie()
        return self._cookies

    def set_cookie(
        self,
        name: str,
        value: str,
        *,
        expires: str | None = None,
        domain: str | None = None,
        max_age: int | str | None = None,
        path: str = "/",
        secure: bool | None = None,
        httponly: bool | None = None,
        samesite: str | None = None,
    ) -> None:
        """Add a `Set-Cookie` header. See `set_secure_cookie()` for safe defaults."""
        cookies = self.cookies
        old = cookies.get(name)
        if old is not None and old.coded_value == "" and old.get("max-age") == "0":
            del cookies[name]  # a pending deletion is replaced
        cookies[name] = value  # raises http.cookies.CookieError for an illegal name
        morsel: Morsel[str] = cookies[name]
        if expires is not None:
            morsel["expires"] = expires
        elif morsel.get("expires") == "Thu, 01 Jan 1970 00:00:00 GMT":
            del morsel["expires"]
        if domain is not None:
            morsel["domain"] = domain
        if max_age is not None:
            morsel["max-age"] = str(max_age)
        elif "max-age" in morsel:
            del morsel["max-age"]
        morsel["path"] = path
        if secure is not None:
            morsel["secure"] = secure
        if httponly is not None:
            morsel["httponly"] = httponly
        if samesite is not None:
            if samesite.lower() not in ("strict", "lax", "none"):
                raise ValueError(f"samesite must be Strict, Lax or None, not {samesite!r}")
            morsel["samesite"] = samesite

    def set_secure_cookie(self, name: str, value: str, **kwargs: Any) -> None:
        """`set_cookie` with `Secure`, `HttpOnly` and `SameSite=Lax` unless given."""
        self.set_cookie(name, value, **{**SECURE_COOKIE_DEFAULTS, **kwargs})

    def del_cookie(self, name: str, *, domain: str | None = None, path: str = "/") -> None:
        """Tell the client to drop the cookie `name`."""
        self.cookies.pop(name, None)
        self.set_cookie(
            name,
            "",
            max_age=0,
            expires="Thu, 01 Jan 1970 00:00:00 GMT",
            domain=domain,
            path=path,
        )

    # -- sending -----------------------------------------------------------------------

    def _header_pairs(self) -> tuple[list[tuple[str, str]], int | None]:
        """The fields to send and the Content-Length hint (framing removed)."""
        length: int | None = None
        headers = self._hdrs
        if headers is None:
            pairs = [("Content-Type", self._ctype)] if self._ctype is not None else []
            items: list[tuple[str, str, str]] = []
        else:
            pairs = []
            items = headers._items
        for lname, name, value in items:
            if lname == "content-length":
                if not value.isdigit() or not value.isascii():
                    raise ValueError(f"invalid Content-Length header {value!r}")
                length = int(value)
                continue
            if lname == "transfer-encoding":
                continue
            pairs.append((name, value))
        if self._cookies:
            for morsel in self._cookies.values():
                pairs.append(("Set-Cookie", morsel.OutputString()))
        if self._keep_alive is False:
            pairs.append(("Connection", "close"))
        return pairs, length

    def _choose_coding(self, request: Request) -> str | None:
        if self._compression is None or self._status in (204, 304) or self._status < 200:
            return None
        if "Content-Encoding" in self._headers:
            return None  # already encoded by the handler
        if isinstance(self._compression, str):
            return self._compression
        accepted = _parse_codings(request.headers.get("Accept-Encoding", ""))
        for coding in ContentCoding.all:
            if accepted.get(coding, accepted.get("*", 0.0)) > 0:
                return coding
        return None

    @staticmethod
    def _compressor_for(coding: str) -> Any:
        wbits = 16 + zlib.MAX_WBITS if coding == ContentCoding.gzip else zlib.MAX_WBITS
        return zlib.compressobj(6, zlib.DEFLATED, wbits)

    async def prepare(self, request: Request) -> ResponseWriter | None:
        """Send the status line and headers; the body follows with `write()`."""
        if self._eof_sent:
            return None
        if self._writer is not None:
            return self._writer
        self._request = request
        if request._app._any_prepare_hooks:
            await request._prepare_hook(self)
        if "Content-Type" not in self._headers:
            self._headers["Content-Type"] = "application/octet-stream"
        coding = self._choose_coding(request)
        if coding is not None:
            self._headers["Content-Encoding"] = coding
            self._headers.add("Vary", "Accept-Encoding")
            self._compressor = self._compressor_for(coding)
            self._headers.pop("Content-Length", None)
        pairs, length = self._header_pairs()
        if self._chunked:
            length = None
        writer = request._writer
        if self._keep_alive is False:
            writer.force_close()
        await writer.start(self._status, pairs, reason=self._reason, content_length=length)
        self._writer = writer
        return writer

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send a piece of the body (after `prepare()`)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be byte-ish ({type(data)!r})")
        if self._eof_sent:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._writer is None:
            raise RuntimeError("Cannot call write() before prepare()")
        chunk = bytes(data)
        if self._compressor is not None:
            chunk = self._compressor.compress(chunk)
            if not chunk:
                return
        await self._writer.write(chunk)

    async def drain(self) -> None:
        """Wait until the client has taken enough of what was written."""
        if self._writer is not None:
            await self._writer.drain()

    async def write_eof(self, data: bytes = b"") -> None:
        """Send the last piece of the body and end the response."""
        if self._eof_sent:
            return
        if self._writer is None:
            raise RuntimeError("Response has not been started")
        tail = bytes(data)
        if self._compressor is not None:
            tail = self._compressor.compress(tail) + self._compressor.flush()
        self._eof_sent = True
        await self._writer.write_eof(tail)

    def __repr__(self) -> str:
        state = "eof" if self._eof_sent else ("prepared" if self._writer else "not prepared")
        return f"<{type(self).__name__} {self._status} {self._reason} {state}>"

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


class Response(StreamResponse):
    """A response with its whole body known up front (`body=` bytes or `text=`)."""

    def __init__(
        self,
        *,
        body: bytes | bytearray | memoryview | None = None,
        status: int = 200,
        reason: str | None = None,
        text: str | None = None,
        headers: HeadersLike | None = None,
        content_type: str | None = None,
        charset: str | None = None,
        zlib_executor_size: int | None = None,
        zlib_executor: Any = None,
    ) -> None:
        if body is not None and text is not None:
            raise ValueError("body and text are not allowed together")
        # StreamResponse.__init__, inlined: a Response is made per request.
        if reason is None and type(status) is int and 100 <= status <= 999:
            self._status = status
            self._reason = _REASONS.get(status, "")
        else:
            _init_status(self, status, reason)
        if headers:
            self._hdrs = CIMultiDict(headers)
            has_ctype = "Content-Type" in self._hdrs
        else:
            has_ctype = False
        if has_ctype and (content_type is not None or charset is not None):
            raise ValueError(
                "passing both Content-Type header and content_type or charset params is forbidden"
            )
        self._body: bytes | None = None
        if text is not None:
            if type(text) is not str and not isinstance(text, str):
                raise TypeError(f"text argument must be str ({type(text)!r})")
            charset = charset or "utf-8"
            if not has_ctype:
                ctype = f"{content_type or 'text/plain'}; charset={charset}"
                if self._hdrs is None:
                    self._ctype = ctype
                else:
                    self._hdrs.add("Content-Type", ctype)
            self._body = text.encode(charset)
        else:
            if body is not None:
                if not isinstance(body, (bytes, bytearray, memoryview)):
                    raise TypeError(f"body argument must be bytes-like ({type(body)!r})")
                self._body = bytes(body)
            if not has_ctype and (content_type is not None or body is not None):
                ctype = content_type or "application/octet-stream"
                self._set_ctype(f"{ctype}; charset={charset}" if charset else ctype)

    def _set_ctype(self, value: str) -> None:
        if self._hdrs is None:
            self._ctype = value
        else:
            self._hdrs.add("Content-Type", value)

    @property
    def body(self) -> bytes | None:
        return self._body

    @body.setter
    def body(self, value: bytes | bytearray | memoryview | None) -> None:
        if value is not None and not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"body argument must be bytes-like ({type(value)!r})")
        self._body = None if value is None else bytes(value)

    @property
    def text(self) -> str | None:
        if self._body is None:
            return None
        return self._body.decode(self.charset or "utf-8")

    @text.setter
    def text(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"text argument must be str ({type(value)!r})")
        if "Content-Type" not in self._headers:
            self._headers["Content-Type"] = "text/plain; charset=utf-8"
        self._body = value.encode(self.charset or "utf-8")

    @property
    def content_length(self) -> int | None:
        if self._body is not None and self._compression is None:
            return len(self._body)
        return super().content_length

    @content_length.setter
    def content_length(self, value: int | None) -> None:
        raise RuntimeError("Content length is computed from the body of a Response")

    async def write_eof(self, data: bytes = b"") -> None:
        if self._eof_sent:
            return
        if self._writer is None:
            raise RuntimeError("Response has not been started")
        await super().write_eof(data)

    async def prepare(self, request: Request) -> ResponseWriter | None:
        """Send the whole response now (head and body)."""
        if self._eof_sent or self._writer is not None:
            return self._writer
        await self._send(request)
        return self._writer

    async def _send(self, request: Request) -> None:
        """The fast path: head and body in one write."""
        self._request = request
        if request._app._any_prepare_hooks:
            await request._prepare_hook(self)
        writer = request._writer
        status, pairs, body, reason = self._finish(writer)
        await writer.send(status, pairs, body, reason=reason)

    def _finish(
        self, writer: ResponseWriter
    ) -> tuple[int, Sequence[tuple[str, str]], bytes, str | None]:
        """Mark the response sent through `writer` and return what
        `writer.send()` needs (compressing the body if asked to)."""
        body = self._body or b""
        if (
            self._hdrs is None
            and self._compression is None
            and not self._cookies
            and self._keep_alive is not False
        ):
            # The common response: a body and at most a Content-Type.
            self._writer = writer
            self._eof_sent = True
            status = self._status
            reason = self._reason
            ctype = self._ctype
            return (
                status,
                # A tuple: the writer keeps its encoding (writer.block_cache).
                (("Content-Type", ctype),) if ctype is not None else (),
                body,
                None if reason is _REASONS.get(status) else reason,
            )
        if body and self._compression is not None:
            assert self._request is not None
            coding = self._choose_coding(self._request)
            if coding is not None:
                compressor = self._compressor_for(coding)
                body = compressor.compress(body) + compressor.flush()
                self._headers["Content-Encoding"] = coding
                self._headers.add("Vary", "Accept-Encoding")
        pairs, _ = self._header_pairs()
        if self._keep_alive is False:
            writer.force_close()
        self._writer = writer
        self._eof_sent = True
        status = self._status
        # The standard phrase goes as None: the writer has its line cached.
        reason = self._reason
        return status, pairs, body, None if reason is _REASONS.get(status) else reason


def json_response(
    data: Any = ...,
    *,
    text: str | None = None,
    body: bytes | None = None,
    status: int = 200,
    reason: str | None = None,
    headers: HeadersLike | None = None,
    content_type: str = "application/json",
    dumps: Callable[[Any], str] = json.dumps,
) -> Response:
    """A `Response` with `data` serialized as JSON (or `text`/`body` given as is)."""
    if data is not ...:
        if text is not None or body is not None:
            raise ValueError("only one of data, text, or body should be specified")
        text = dumps(data)
    return Response(
        text=text,
        body=body,
        status=status,
        reason=reason,
        headers=headers,
        content_type=content_type,
    )
