"""Static files: `FileResponse` (one file, with validators and byte ranges) and
`StaticResource` (a directory served under a URL prefix, `app.router.add_static`).

The file body goes out through `ResponseWriter.sendfile`, i.e. `loop.sendfile`:
zero-copy `os.sendfile` on a plain socket, and the loop's own read-and-write
under TLS. Only when that is impossible (compression, a loop without
`sendfile` such as uvloop) is the file read in `chunk_size` pieces, in the
default executor, and written.

Filesystem calls stay off the loop. A static request makes one trip to the
executor, which does all of its blocking work at once: resolve the path, check
it, `stat` it, open it (or list the directory). A `FileResponse` made by a
handler opens its file in one trip too. Closing a read-only file is done on
the loop: it does not wait for the disk.

Path rules of `StaticResource` (every refusal is a 404, so nothing tells a
client whether a path it may not see exists):

- The part of the URL under the prefix is percent-decoded (`%2e%2e` is `..`,
  `%2F` is `/`) and then split on `/`. Refused: a `.` or `..` segment (they are
  refused, not resolved: `/static/a/../b` is a 404 even though it stays in the
  directory; browsers remove dot segments before sending), an empty segment
  (`//`, which also covers absolute paths such as `/static//etc/passwd`), a
  backslash and a NUL anywhere. A trailing `/` asks for a directory.
- The path is then resolved with `Path.resolve(strict=True)`, which follows
  every symlink, and must be inside the resolved root directory
  (`is_relative_to`). So a symlink inside the root that points inside the root
  works; one that points outside is a 404.
- `follow_symlinks=True` drops that last check and nothing else: every symlink
  found *under the root* is followed wherever it points (the URL itself still
  cannot leave the root, by the first rule). Use it only for a directory whose
  symlinks you placed yourself.
- Only regular files are served, and directories when `show_index=True` (an
  HTML listing that leaves out entries it would not serve). A directory never
  serves its `index.html` implicitly: add a route for that if you want it.
- Unreadable files are 404s too, not 403s.
- Dotfiles are served like any other file: do not point a static route at a
  directory holding what must stay private (`.git`, `.env`).
- A race remains that no portable stdlib call closes: someone who can rename
  directories under the root while requests are served could swap one for a
  symlink between the check and the `open`. The final component is opened
  with `O_NOFOLLOW`; do not serve a tree that untrusted users can write to.

Conditional requests follow RFC 9110 13.2.2 in its order: `If-Match` (strong
comparison) or else `If-Unmodified-Since` can give 412; then `If-None-Match`
(weak comparison, `*`) or else `If-Modified-Since` gives 304 (412 for a method
other than GET and HEAD); then `If-Range` decides whether `Range` is honoured.

Where this differs from aiohttp, and why:

- A `Range` that is malformed, has several ranges, or is not in bytes is
  ignored: the whole file with 200, which RFC 9110 14.2 allows; aiohttp
  answers 416. Only a well-formed single range that starts past the end (or
  `bytes=-0`) gets 416. Multipart/byteranges is not implemented.
- `Range` is honoured for GET only (RFC 9110 14.2); aiohttp also for HEAD.
- Dates compare in whole seconds, the resolution of HTTP dates: a file whose
  mtime has a fraction still gets 304 for its own `Last-Modified`. An
  `If-Range` date must equal `Last-Modified` exactly and the file must not
  have changed within the current second (a weaker date is not a strong
  validator, RFC 9110 8.8.2.2); aiohttp accepts any later date.
- Preconditions and ranges only apply when the response would be 2xx
  (RFC 9110 13.2.1), so `FileResponse("404.html", status=404)` is never a 304.
- When the body is compressed, the `ETag` is weak (`W/"..."`): the gzip bytes
  are a different representation, equivalent but not byte-identical. A range
  request is never compressed: byte ranges refer to the file's own bytes.
- Missing, unreadable and non-regular files are all 404; aiohttp answers 403
  for some. `text/*` types get `charset=utf-8` (text files are taken to be
  UTF-8; pass a `Content-Type` header to say otherwise).
- `url_for(filename=..., append_version=True)` caches the hash of each file by
  (inode, size, mtime) and re-hashes only when one changes; aiohttp reads the
  whole file on every call. It raises `ValueError` for a filename the resource
  would refuse to serve.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import logging
import mimetypes
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import quote

from .exceptions import HTTPNotFound
from .response import HeadersLike, Response, StreamResponse
from .router import URL, PrefixResource

if TYPE_CHECKING:
    from ..http import ResponseWriter
    from .request import ETag, Request

__all__ = ["FileResponse", "StaticResource"]

logger = logging.getLogger("treadle.web")

T = TypeVar("T")

# O_NONBLOCK: a FIFO swapped in after the stat must not block the worker thread
# in open(); it is cleared again once the descriptor is known to be a file.
_OPEN_FLAGS: Final = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC

# A file that *is* a compressed archive (`x.tar.gz`) is served as that archive,
# not as the content type of what is inside with a Content-Encoding.
_ARCHIVE_TYPES: Final = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "br": "application/x-brotli",
    "compress": "application/x-compress",
}
_OCTET_STREAM: Final = "application/octet-stream"
_URL_SAFE: Final = "/@:!$&'()*+,;=-._~"  # what url_for leaves unquoted, as the router does


def _content_type(path: Path) -> str:
    """The Content-Type for `path` by its name, from `mimetypes` (so
    `mimetypes.add_type` extends it)."""
    # Before 3.13, guess_type() parses its argument as a URL: a name such as
    # "data:x.txt" would be taken for a data: URL. A leading "/" rules that out.
    ctype, encoding = mimetypes.guess_type("/" + path.name)
    if encoding is not None:
        return _ARCHIVE_TYPES.get(encoding, _OCTET_STREAM)
    if ctype is None:
        return _OCTET_STREAM
    return f"{ctype}; charset=utf-8" if ctype.startswith("text/") else ctype


class _OpenFile:
    """A regular file opened for a response, with its `fstat` (taken from the
    open descriptor, so size and validators describe what is sent) and the
    content type its name suggests."""

    __slots__ = ("content_type", "file", "path", "stat")

    def __init__(self, path: Path, file: Any, st: os.stat_result) -> None:
        self.path = path
        self.file = file
        self.stat = st
        # Here, in the worker thread: the first guess reads the system's
        # mime.types files.
        self.content_type = _content_type(path)

    def close(self) -> None:
        self.file.close()


def _open_regular(path: Path, *, follow: bool = True) -> _OpenFile:
    """Open `path` if it is a regular file (blocking: run it in the executor);
    with `follow=False`, not if its last component is a symlink. Raises OSError
    (FileNotFoundError for anything that is not a regular file)."""
    fd = os.open(path, _OPEN_FLAGS if follow else _OPEN_FLAGS | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFoundError(f"not a regular file: {path}")
        os.set_blocking(fd, True)
        file = open(fd, "rb", buffering=0)  # noqa: SIM115 - owned by _OpenFile
    except BaseException:
        os.close(fd)
        raise
    return _OpenFile(path, file, st)


def _close_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        result = future.result()
        if isinstance(result, _OpenFile):
            result.close()


async def _off_loop(func: Callable[..., T], *args: Any) -> T:
    """`func(*args)` in the default executor. If the caller is cancelled while
    it runs, a file it opened is closed when it finishes, not leaked."""
    future = asyncio.get_running_loop().run_in_executor(None, func, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(_close_result)
        raise


# -- validators ------------------------------------------------------------------------------


def _seconds(st: os.stat_result) -> int:
    """The mtime as HTTP dates carry it: whole seconds (floored, as formatdate does)."""
    return st.st_mtime_ns // 1_000_000_000


def _etag_matches(tags: tuple[ETag, ...], value: str, weak: bool, *, strong: bool) -> bool:
    """Whether an If-Match/If-None-Match list matches the entity tag `value`
    (`weak` if ours is weak). Strong comparison: both tags strong and equal;
    weak comparison: equal values (RFC 9110 8.8.3.2)."""
    if len(tags) == 1 and tags[0].value == "*" and not tags[0].is_weak:
        return True
    if strong:
        return not weak and any(t.value == value and not t.is_weak for t in tags)
    return any(t.value == value for t in tags)


def _precondition(request: Request, etag: str, weak: bool, mtime: int) -> int | None:
    """304 or 412 if a precondition says so, else None (RFC 9110 13.2.2)."""
    safe = request.method in ("GET", "HEAD")
    if_match = request.if_match
    if if_match is not None:
        if not _etag_matches(if_match, etag, weak, strong=True):
            return 412
    else:
        since = request.if_unmodified_since
        if since is not None and mtime > since.timestamp():
            return 412
    if_none_match = request.if_none_match
    if if_none_match is not None:
        if _etag_matches(if_none_match, etag, weak, strong=False):
            return 304 if safe else 412
    elif safe:
        since = request.if_modified_since
        if since is not None and mtime <= since.timestamp():
            return 304
    return None


def _if_range_holds(request: Request, value: str, etag: str, weak: bool, mtime: int) -> bool:
    """Whether `If-Range: value` lets the Range through (RFC 9110 13.1.5)."""
    value = value.strip()
    if value.startswith(('"', "W/")):
        # An entity tag: strong comparison, so a weak tag (ours or theirs) fails.
        return not weak and value == f'"{etag}"'
    date = request.if_range
    if date is None:
        return False
    # A date is a strong validator only if the file did not change in the
    # second it names (RFC 9110 8.8.2.2): a second write then would go unseen.
    return int(date.timestamp()) == mtime and mtime < int(time.time())


class _Unsatisfiable(Exception):
    """The Range cannot be served from this file: 416."""


def _byte_range(value: str, size: int) -> tuple[int, int] | None:
    """The `Range` header as (start, stop) within a file of `size` bytes, or
    None to ignore it and send the whole file (another unit, several ranges,
    bad syntax, or an empty file). Raises _Unsatisfiable for a single range
    that selects nothing (RFC 9110 14.1.2)."""
    unit, sep, spec = value.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first or last):
        return None
    if not all(p.isascii() and p.isdigit() for p in (first, last) if p):
        return None
    try:
        start = int(first) if first else None
        end = int(last) if last else None
    except ValueError:  # more digits than int() will convert
        return None
    if start is None:
        assert end is not None
        if end == 0:
            raise _Unsatisfiable
        if size == 0:
            return None  # the whole of nothing: a 200 with an empty body
        return max(0, size - end), size
    if end is not None and end < start:
        return None  # an invalid range-spec makes the header invalid: ignore it
    if start >= size:
        raise _Unsatisfiable
    return start, size if end is None else min(end + 1, size)


# -- FileResponse ----------------------------------------------------------------------------


class FileResponse(StreamResponse):
    """A response that sends the file at `path`, with `Content-Type` (from
    `mimetypes`, unless given in `headers`), `Content-Length`, `Last-Modified`,
    an `ETag` of the form `"<mtime_ns hex>-<size hex>"` and `Accept-Ranges:
    bytes`; it answers conditional requests (304, 412) and single byte ranges
    (206, 416). A missing, unreadable or non-regular file gives 404.

    Return it from a handler (or `await resp.prepare(request)`: that sends the
    whole response). The file is opened, off the loop, only when the response
    is sent; a symlink at `path` is followed (the application chose the path).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        chunk_size: int = 256 * 1024,
        status: int = 200,
        reason: str | None = None,
        headers: HeadersLike | None = None,
    ) -> None:
        """`chunk_size` is the read size when the file cannot be sent with
        `sendfile` (compression, or a loop without it)."""
        super().__init__(status=status, reason=reason, headers=headers)
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, not {chunk_size!r}")
        self.path = Path(path)
        self._chunk_size = chunk_size
        self._open: _OpenFile | None = None

    @classmethod
    def _of_open_file(cls, opened: _OpenFile, chunk_size: int) -> FileResponse:
        # StaticResource opens (and checks) the file in the same executor trip
        # as it resolves the path, and hands it over.
        response = cls(opened.path, chunk_size)
        response._open = opened
        return response

    def __del__(self) -> None:
        # Never sent (a middleware replaced it): do not hold the descriptor
        # until the garbage collector finds the file object.
        opened = getattr(self, "_open", None)
        if opened is not None:
            opened.close()

    async def prepare(self, request: Request) -> ResponseWriter | None:
        """Send the whole response: head and file (or 304, 412, 416, 404)."""
        if self._eof_sent or self._writer is not None:
            return self._writer
        opened, self._open = self._open, None
        try:
            if opened is None:
                try:
                    opened = await _off_loop(_open_regular, self.path)
                except OSError as exc:
                    logger.debug("FileResponse for %s: %s", self.path, exc)
                    await self._answer(request, 404)
                    return self._writer
            await self._serve(request, opened)
        except ConnectionError:
            # The client went away mid-body; the writer has closed the
            # connection (or will) and there is nobody left to tell.
            self._eof_sent = True
        finally:
            if opened is not None:
                opened.close()
        return self._writer

    async def _send(self, request: Request) -> None:
        # What the application calls for a response the handler returned unsent.
        await self.prepare(request)

    async def _answer(self, request: Request, status: int, *extra: tuple[str, str]) -> None:
        """A short text response instead of the file (404, 412, 416)."""
        self.set_status(status)
        self._compression = None
        headers = self._headers
        for name in ("ETag", "Last-Modified", "Content-Encoding"):
            headers.pop(name, None)
        headers.update(extra)
        headers["Content-Type"] = "text/plain; charset=utf-8"
        body = f"{status}: {self._reason}".encode()
        self._chunked = False
        self.content_length = len(body)
        await super().prepare(request)
        await self.write_eof(body)

    async def _serve(self, request: Request, opened: _OpenFile) -> None:
        st = opened.stat
        size = st.st_size
        mtime = _seconds(st)
        etag = f"{st.st_mtime_ns:x}-{size:x}"
        headers = self._headers
        if "Content-Type" not in headers:
            headers["Content-Type"] = opened.content_type

        span: tuple[int, int] | None = None
        if 200 <= self._status < 300:
            weak = self._choose_coding(request) is not None
            verdict = _precondition(request, etag, weak, mtime)
            if verdict == 412:
                await self._answer(request, 412)
                return
            if verdict == 304:
                self.set_status(304)
                self._set_validators(etag, weak, st)
                await super().prepare(request)
                await self.write_eof()
                return
            if self._status == 200 and request.method == "GET":
                try:
                    span = self._range(request, etag, weak, mtime, size)
                except _Unsatisfiable:
                    await self._answer(request, 416, ("Content-Range", f"bytes */{size}"))
                    return

        if span is not None:
            start, stop = span
            self.set_status(206)
            self._compression = None  # ranges are of the file's own bytes
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        else:
            start, stop = 0, size
        count = stop - start
        self._set_validators(etag, self._choose_coding(request) is not None, st)
        headers["Accept-Ranges"] = "bytes"
        if not self._chunked:
            self.content_length = count
        await super().prepare(request)
        if request.method == "HEAD" and (self._compressor is not None or self._chunked):
            await self.write_eof()  # no length to account for: nothing to read
            return
        await self._send_body(opened, start, count)

    def _range(
        self, request: Request, etag: str, weak: bool, mtime: int, size: int
    ) -> tuple[int, int] | None:
        value = request.headers.get("Range")
        if value is None:
            return None
        if_range = request.headers.get("If-Range")
        if if_range is not None and not _if_range_holds(request, if_range, etag, weak, mtime):
            return None  # the client's copy is stale: it gets the whole new file
        return _byte_range(value, size)

    def _set_validators(self, etag: str, weak: bool, st: os.stat_result) -> None:
        self._headers["ETag"] = f'W/"{etag}"' if weak else f'"{etag}"'
        # Never later than the Date header (RFC 9110 8.8.2.1), for a clock that
        # was behind when the file was written.
        self.last_modified = min(st.st_mtime, time.time())

    async def _send_body(self, opened: _OpenFile, offset: int, count: int) -> None:
        writer = self._writer
        assert writer is not None
        if count and self._compressor is None and not self._chunked:
            try:
                sent = await writer.sendfile(opened.file, offset, count)
            except NotImplementedError:
                pass  # this loop has no sendfile: read and write below
            else:
                if sent < count:
                    self._cut_short(count - sent)  # the writer has ended the response
                    return
                await self.write_eof()
                return
        await self._copy(opened, offset, count)

    async def _copy(self, opened: _OpenFile, offset: int, count: int) -> None:
        """The body by reading `chunk_size` pieces in the executor and writing
        them (compressed if compression is on)."""
        loop = asyncio.get_running_loop()
        fd = opened.file.fileno()
        while count:
            chunk = await loop.run_in_executor(
                None, os.pread, fd, min(self._chunk_size, count), offset
            )
            if not chunk:
                # Leave the body unfinished and close: ending it (with the last
                # chunk) would make a short file look whole.
                assert self._writer is not None
                self._writer.force_close()
                self._cut_short(count)
                return
            await self.write(chunk)
            offset += len(chunk)
            count -= len(chunk)
        await self.write_eof()

    def _cut_short(self, missing: int) -> None:
        self._eof_sent = True
        logger.warning(
            "%s shrank while being sent (%d bytes missing): closing the connection",
            self.path,
            missing,
        )


# -- StaticResource --------------------------------------------------------------------------


def _url_parts(tail: str) -> tuple[tuple[str, ...], bool] | None:
    """The path segments of `tail` (the decoded URL path under the prefix,
    '' or starting with '/') and whether it ends with '/'; None if it breaks
    a rule of the module docstring."""
    if not tail:
        return (), False
    if tail[0] != "/" or "//" in tail or "\\" in tail or "\x00" in tail:
        return None
    body = tail[1:]
    trailing = body.endswith("/")
    if trailing:
        body = body[:-1]
    parts = tuple(body.split("/")) if body else ()
    if any(part in ("", ".", "..") for part in parts):
        return None
    return parts, trailing


class StaticResource(PrefixResource):
    """Serves the files under `directory` at URLs under `prefix` (GET and
    HEAD), as `FileResponse`s. The path rules are in the module docstring.

    `show_index`: a directory gets an HTML listing (otherwise 404).
    `follow_symlinks`: follow symlinks under the directory wherever they point.
    `append_version`: `url_for()` adds `?v=<hash of the file>` by default.
    `chunk_size`: as for `FileResponse`. `expect_handler` is accepted for
    aiohttp code and not used: the HTTP layer answers `Expect: 100-continue`
    itself, and a GET or HEAD here never reads a body.
    """

    #: The query parameter `url_for(..., append_version=True)` adds.
    VERSION_KEY: Final = "v"

    def __init__(
        self,
        prefix: str,
        directory: str | os.PathLike[str],
        *,
        name: str | None = None,
        expect_handler: Any = None,
        chunk_size: int = 256 * 1024,
        show_index: bool = False,
        follow_symlinks: bool = False,
        append_version: bool = False,
    ) -> None:
        """Raises ValueError if `directory` is not an existing directory."""
        super().__init__(prefix, name)
        try:
            root = Path(directory).expanduser().resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            raise ValueError(f"No directory exists at {directory!r}") from exc
        if not root.is_dir():
            raise ValueError(f"{directory!r} is not a directory")
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, not {chunk_size!r}")
        self._directory = root
        self._chunk_size = chunk_size
        self._show_index = show_index
        self._follow_symlinks = follow_symlinks
        self._append_version = append_version
        self._expect_handler = expect_handler
        # resolved path -> ((inode, size, mtime_ns), hash) for url_for's versions
        self._hashes: dict[Path, tuple[tuple[int, int, int], str]] = {}
        self.add_route("GET", self._handle)
        self.add_route("HEAD", self._handle)

    @property
    def directory(self) -> Path:
        """The served directory, resolved."""
        return self._directory

    @property
    def bucket(self) -> str | None:  # type: ignore[override]
        # The router tries a resource whose bucket is None for every path:
        # that is what a static route at the root ("/") needs, as a fallback
        # after every other route.
        return super().bucket if self.key else None

    def get_info(self) -> dict[str, Any]:
        """What the resource serves: `directory` and `prefix`."""
        return {"directory": self._directory, "prefix": self._prefix}

    def __repr__(self) -> str:
        name = f"'{self.name}' " if self.name else ""
        return f"<StaticResource {name}{self._prefix or '/'} -> {str(self._directory)!r}>"

    # -- URLs --

    def url_for(  # type: ignore[override]
        self, *, filename: str | os.PathLike[str], append_version: bool | None = None
    ) -> URL:
        """The URL of `filename` (relative to the directory), with
        `?v=<hash>` when `append_version` (default: the resource's setting)
        and the file exists. The hash is cached until the file changes; the
        first call for a file reads it, on the calling thread."""
        name = os.fspath(filename).lstrip("/")
        checked = _url_parts("/" + name)
        if checked is None:
            raise ValueError(f"{filename!r} is not a path under the static directory")
        url = URL(quote(f"{self._prefix}/{name}", safe=_URL_SAFE))
        if append_version is None:
            append_version = self._append_version
        if append_version:
            digest = self._version(checked[0])
            if digest is not None:
                url = url.with_query({self.VERSION_KEY: digest})
        return url

    def _version(self, parts: tuple[str, ...]) -> str | None:
        path = self._resolve(parts)
        if path is None:
            return None
        try:
            opened = _open_regular(path, follow=False)
        except OSError:
            return None
        try:
            st = opened.stat
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            cached = self._hashes.get(path)
            if cached is not None and cached[0] == key:
                return cached[1]
            digest = hashlib.file_digest(opened.file, "sha256").digest()
        except OSError:
            return None
        finally:
            opened.close()
        version = base64.urlsafe_b64encode(digest).decode("ascii")
        self._hashes[path] = (key, version)
        return version

    # -- serving --

    def _resolve(self, parts: tuple[str, ...]) -> Path | None:
        """The real path for URL segments that passed `_url_parts`, or None
        if it does not exist or leads out of the root (blocking)."""
        try:
            path = self._directory.joinpath(*parts).resolve(strict=True)
        except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before 3.13
            return None
        if not self._follow_symlinks and not path.is_relative_to(self._directory):
            return None
        return path

    def _locate(self, parts: tuple[str, ...], trailing_slash: bool) -> _OpenFile | str | None:
        """Blocking, for the executor: the opened file, or a directory's
        listing (HTML), or None for a 404."""
        path = self._resolve(parts)
        if path is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        if stat.S_ISDIR(st.st_mode):
            return self._listing(path, parts) if self._show_index else None
        if trailing_slash or not stat.S_ISREG(st.st_mode):
            return None
        try:
            return _open_regular(path, follow=False)
        except OSError:
            return None

    async def _handle(self, request: Request) -> StreamResponse:
        checked = _url_parts(request.match_info["tail"])
        if checked is None:
            raise HTTPNotFound()
        found = await _off_loop(self._locate, *checked)
        if found is None:
            raise HTTPNotFound()
        if isinstance(found, str):
            return Response(text=found, content_type="text/html")
        return FileResponse._of_open_file(found, self._chunk_size)

    def _servable(self, entry: os.DirEntry[str]) -> str | None:
        """How a directory entry is listed ('' file, '/' directory), or None
        to leave it out because it would not be served."""
        if "\\" in entry.name:
            return None
        try:
            if entry.is_symlink():
                target = Path(entry.path).resolve(strict=True)
                if not self._follow_symlinks and not target.is_relative_to(self._directory):
                    return None
            if entry.is_dir():
                return "/"
            if entry.is_file():
                return ""
        except (OSError, RuntimeError):
            pass
        return None

    def _listing(self, path: Path, parts: tuple[str, ...]) -> str | None:
        """An HTML index of the directory `path`, reached by `parts` (blocking)."""
        here = "/".join((self._prefix, *parts)) + "/"
        rows = []
        try:
            with os.scandir(path) as entries:
                for entry in sorted(entries, key=lambda e: e.name):
                    suffix = self._servable(entry)
                    if suffix is None:
                        continue
                    href = quote(here + entry.name + suffix, safe=_URL_SAFE)
                    rows.append(
                        f'<li><a href="{html.escape(href)}">{html.escape(entry.name + suffix)}'
                        "</a></li>"
                    )
        except OSError:
            return None
        title = html.escape(f"Index of {here}")
        return (
            "<!DOCTYPE html>\n"
            f'<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
            f"<body><h1>{title}</h1>\n<ul>\n" + "\n".join(rows) + "\n</ul>\n</body></html>\n"
        )
