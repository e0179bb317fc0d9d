"""The request a handler receives: what the client sent, parsed lazily.

Everything beyond the request line is computed on first use and cached: the
decoded path, the query multi-dict, cookies, the parsed conditional headers.
A handler that reads only `match_info` pays for nothing else.

Per-request state lives in the request itself (`request["user"] = ...`), as in
aiohttp; setting attributes is not allowed (the class has slots).
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import json
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from http.cookies import CookieError, SimpleCookie
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl

from .exceptions import HTTPBadRequest, HTTPException, HTTPRequestEntityTooLarge
from .multidict import MultiDict, MultiDictProxy
from .router import URL, MatchInfo, decode_path

if TYPE_CHECKING:
    from ..http import Body, Headers, Request as Message, ResponseWriter
    from .app import Application
    from .response import StreamResponse

__all__ = ["ETag", "FileField", "JSONBadRequest", "Request"]

_unset: Any = object()


class ETag(NamedTuple):
    """One entity tag of an `If-Match`/`If-None-Match` header."""

    value: str
    is_weak: bool = False


class FileField(NamedTuple):
    """A file part of a multipart form (`await request.post()`)."""

    name: str
    filename: str
    file: Any
    content_type: str
    headers: Any


class JSONBadRequest(HTTPBadRequest, ValueError):
    """The body is not valid JSON: a 400 the client caused (also a ValueError,
    so code catching JSON errors keeps working)."""


def _parse_http_date(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed


def _parse_etags(value: str | None) -> tuple[ETag, ...] | None:
    if value is None:
        return None
    value = value.strip()
    if value == "*":
        return (ETag("*"),)
    tags = []
    for part in value.split(","):
        part = part.strip()
        weak = part.startswith("W/")
        if weak:
            part = part[2:]
        if len(part) >= 2 and part[0] == part[-1] == '"' and '"' not in part[1:-1]:
            tags.append(ETag(part[1:-1], weak))
    return tuple(tags)


class Request(MutableMapping[str, Any]):
    """An HTTP request as a handler sees it."""

    __slots__ = (
        "_app",
        "_body",
        "_cookies",
        "_match_error",
        "_match_info",
        "_message",
        "_path",
        "_post",
        "_query",
        "_read",
        "_state",
        "_writer",
    )

    def __init__(
        self,
        message: Message,
        body: Body,
        writer: ResponseWriter,
        app: Application,
    ) -> None:
        self._message = message
        self._body = body
        self._writer = writer
        self._app = app
        self._match_info: MatchInfo | None = None
        self._match_error: HTTPException | None = None
        self._state: dict[str, Any] | None = None
        self._path: str | None = None
        self._query: MultiDictProxy[str] | None = None
        self._cookies: MappingProxyType[str, str] | None = None
        self._read: bytes | None = None
        self._post: MultiDictProxy[Any] | None = None

    # -- per-request state --------------------------------------------------------------

    def _dict(self) -> dict[str, Any]:
        if self._state is None:
            self._state = {}
        return self._state

    def __getitem__(self, key: str) -> Any:
        return self._dict()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._dict()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._state) if self._state else 0

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self._message.target}>"

    # -- the request line ------------------------------------------------------------------

    @property
    def method(self) -> str:
        return self._message.method

    @property
    def version(self) -> tuple[int, int]:
        return self._message.version

    @property
    def raw_path(self) -> str:
        """The request target as sent: path and query, still percent-encoded."""
        return self._message.target

    @property
    def path(self) -> str:
        """The path, percent-decoded."""
        if self._path is None:
            self._path = decode_path(self._message.path, keep_slash=False)
        return self._path

    @property
    def query_string(self) -> str:
        return self._message.query_string

    @property
    def path_qs(self) -> str:
        qs = self.query_string
        return f"{self.path}?{qs}" if qs else self.path

    @property
    def query(self) -> MultiDictProxy[str]:
        """The query string's parameters (repeated keys kept, blanks kept)."""
        if self._query is None:
            qs = self.query_string
            pairs = parse_qsl(qs, keep_blank_values=True) if qs else []
            self._query = MultiDictProxy(MultiDict(pairs))
        return self._query

    @property
    def rel_url(self) -> URL:
        return URL(self._message.target)

    @property
    def headers(self) -> Headers:
        return self._message.headers

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return tuple(self._message.headers.raw)

    @property
    def keep_alive(self) -> bool:
        return self._writer.keep_alive

    # -- connection and URL ---------------------------------------------------------------

    def _extra(self, name: str) -> Any:
        return self._writer.get_extra_info(name)

    @property
    def transport(self) -> Any:
        return self._extra("transport")

    @property
    def secure(self) -> bool:
        """Whether the client used https (as a trusted proxy says, else TLS here)."""
        return self.scheme == "https"

    @property
    def scheme(self) -> str:
        """ "https" or "http", as the client used it (trusted proxies believed:
        `proxy_headers`)."""
        return self._writer.scheme

    @property
    def host(self) -> str:
        """The host the client asked for (a trusted proxy's word, else the
        `Host` header), else the local address the request came to."""
        host = self._writer.host
        if host:
            return host
        sockname = self._extra("sockname")
        if isinstance(sockname, tuple):
            return f"{sockname[0]}:{sockname[1]}"
        return "localhost"

    @property
    def remote(self) -> str | None:
        """The client's address (no port): a trusted proxy's word, else the
        peer's; '' for a Unix socket."""
        client = self._writer.client
        if client is not None:
            return client[0]
        peer = self._extra("peername")
        return "" if peer is not None else None

    @property
    def url(self) -> URL:
        return URL(f"{self.scheme}://{self.host}{self._message.target}")

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    @property
    def task(self) -> asyncio.Task[Any] | None:
        return asyncio.current_task()

    # -- routing ---------------------------------------------------------------------------

    @property
    def match_info(self) -> MatchInfo:
        if self._match_info is None:
            raise RuntimeError("match_info is set once the request is routed")
        return self._match_info

    @property
    def app(self) -> Application:
        """The application (the innermost sub-application) serving the request."""
        match = self._match_info
        if match is not None and match.apps:
            return match.apps[-1]
        return self._app

    @property
    def config_dict(self) -> Any:
        return self.app

    # -- headers, parsed ---------------------------------------------------------------------

    @property
    def cookies(self) -> MappingProxyType[str, str]:
        """The `Cookie` header as a read-only {name: value}; a malformed header
        gives what could be parsed."""
        if self._cookies is None:
            parsed: dict[str, str] = {}
            for header in self._message.headers.getall("Cookie"):
                jar = SimpleCookie()
                try:
                    jar.load(header)
                except CookieError:
                    continue
                parsed.update({k: m.value for k, m in jar.items()})
            self._cookies = MappingProxyType(parsed)
        return self._cookies

    def _content_type_parts(self) -> tuple[str, dict[str, str]]:
        raw = self._message.headers.get("Content-Type")
        if not raw:
            return "application/octet-stream", {}
        ctype, *params = raw.split(";")
        parsed = {}
        for param in params:
            key, _, value = param.partition("=")
            parsed[key.strip().lower()] = value.strip().strip('"')
        return ctype.strip().lower(), parsed

    @property
    def content_type(self) -> str:
        return self._content_type_parts()[0]

    @property
    def charset(self) -> str | None:
        return self._content_type_parts()[1].get("charset")

    @property
    def content_length(self) -> int | None:
        return self._message.content_length if not self._message.chunked else None

    @property
    def has_body(self) -> bool:
        return self._message.has_body

    body_exists = has_body

    @property
    def can_read_body(self) -> bool:
        return self._message.has_body and not self._body.at_eof()

    @property
    def if_modified_since(self) -> datetime.datetime | None:
        return _parse_http_date(self._message.headers.get("If-Modified-Since"))

    @property
    def if_unmodified_since(self) -> datetime.datetime | None:
        return _parse_http_date(self._message.headers.get("If-Unmodified-Since"))

    @property
    def if_range(self) -> datetime.datetime | None:
        return _parse_http_date(self._message.headers.get("If-Range"))

    @property
    def if_match(self) -> tuple[ETag, ...] | None:
        return _parse_etags(self._message.headers.get("If-Match"))

    @property
    def if_none_match(self) -> tuple[ETag, ...] | None:
        return _parse_etags(self._message.headers.get("If-None-Match"))

    @property
    def http_range(self) -> slice:
        """The `Range` header as a slice (`slice(None, None)` when absent).
        Raises ValueError for a range this server cannot serve (several
        ranges, or a malformed one)."""
        value = self._message.headers.get("Range")
        if value is None:
            return slice(None, None)
        unit, _, spec = value.partition("=")
        if unit.strip().lower() != "bytes" or "," in spec:
            raise ValueError("range not in acceptable format")
        first, sep, last = spec.strip().partition("-")
        if not sep or not (first or last):
            raise ValueError("range not in acceptable format")
        if not all(p.isdigit() and p.isascii() for p in (first, last) if p):
            raise ValueError("range not in acceptable format")
        if not first:
            return slice(-int(last), None)
        start = int(first)
        if last:
            end = int(last)
            if end < start:
                raise ValueError("start cannot be after end")
            return slice(start, end + 1)
        return slice(start, None)

    # -- the body ----------------------------------------------------------------------

    @property
    def content(self) -> Body:
        """The body as a stream: `read(n)`, `readany()`, `iter_chunked(n)`..."""
        return self._body

    async def read(self) -> bytes:
        """The whole body. Over the application's `client_max_size`: 413."""
        if self._read is None:
            limit = self.app._client_max_size
            chunks = []
            size = 0
            while True:
                chunk = await self._body.readany()
                if not chunk:
                    break
                size += len(chunk)
                if limit and size > limit:
                    raise HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
                chunks.append(chunk)
            self._read = b"".join(chunks)
        return self._read

    async def text(self) -> str:
        """The body decoded with its charset (UTF-8 by default); 400 if it is not
        valid in that charset."""
        data = await self.read()
        charset = self.charset or "utf-8"
        try:
            return data.decode(charset)
        except LookupError:
            raise HTTPBadRequest(text=f"400: Bad Request (unknown charset {charset!r})") from None
        except UnicodeDecodeError:
            raise HTTPBadRequest(text=f"400: Bad Request (body is not {charset})") from None

    async def json(self, *, loads: Callable[[str], Any] = json.loads) -> Any:
        """The body parsed as JSON; invalid JSON is a 400 (`JSONBadRequest`)."""
        text = await self.text()
        try:
            return loads(text)
        except ValueError as exc:
            raise JSONBadRequest(text=f"400: Bad Request (invalid JSON: {exc})") from None

    async def post(self) -> MultiDictProxy[Any]:
        """Form fields of an urlencoded or multipart body (file parts as
        `FileField`s whose files are spooled to disk past a size limit)."""
        if self._post is not None:
            return self._post
        if self.method not in ("POST", "PUT", "PATCH"):
            self._post = MultiDictProxy(MultiDict())
            return self._post
        ctype = self.content_type
        if ctype == "application/x-www-form-urlencoded":
            text = await self.text()
            try:
                pairs = parse_qsl(
                    text,
                    keep_blank_values=True,
                    strict_parsing=False,
                    encoding=self.charset or "utf-8",
                    errors="strict",
                )
            except UnicodeDecodeError:
                raise HTTPBadRequest(text="400: Bad Request (form is not valid text)") from None
            self._post = MultiDictProxy(MultiDict(pairs))
        elif ctype == "multipart/form-data":
            from .multipart import read_form

            self._post = MultiDictProxy(await read_form(self))
        else:
            self._post = MultiDictProxy(MultiDict())
        return self._post

    async def multipart(self) -> Any:
        """A streaming reader over the parts of a multipart body."""
        from .multipart import MultipartReader

        return MultipartReader.from_request(self)

    async def iter_body(self, size: int = 65536) -> AsyncIterator[bytes]:
        async for chunk in self._body.iter_chunked(size):
            yield chunk

    def _close_files(self) -> None:
        """Close the files of uploaded form parts once the response is out: a
        handler that wants one longer must copy it (or move it) first."""
        post = self._post
        if post is None:
            return
        for value in post.values():
            if isinstance(value, FileField):
                try:
                    value.file.close()
                except Exception:  # a handler may have closed or replaced it
                    pass

    # -- hooks ---------------------------------------------------------------------------------

    async def _prepare_hook(self, response: StreamResponse) -> None:
        match = self._match_info
        apps = match.apps if match is not None and match.apps else (self._app,)
        for app in apps:
            if app.on_response_prepare:
                await app.on_response_prepare.send(self, response)
