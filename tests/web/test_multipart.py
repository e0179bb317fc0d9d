"""multipart/form-data: the sans-IO parser byte by byte, then `request.post()`
and the streaming reader over real sockets on Treadle's loop and the stdlib
loop, with the stdlib's `email` package as the second opinion."""

from __future__ import annotations

import asyncio
import email.generator
import email.parser
import email.policy
import hashlib
import io
import json
import random
from collections.abc import Awaitable, Callable, Iterable
from email import encoders
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from typing import Any

import pytest

from tests.conftest import run
from treadle import web
from treadle.http import Limits, ServerConfig
from treadle.testing import ClientResponse, TestClient, TestServer, read_response
from treadle.web.multipart import (
    END,
    NEED_DATA,
    PART_END,
    FormLimits,
    MultipartError,
    MultipartParser,
    PartStart,
    check_boundary,
    read_form,
    safe_filename,
)

BOUNDARY = "xyzzy"
CTYPE = f"multipart/form-data; boundary={BOUNDARY}"

# -- building bodies -------------------------------------------------------------------------


def part(
    name: str | None = None,
    content: bytes | str = b"",
    *,
    filename: str | None = None,
    headers: Iterable[str] = (),
) -> bytes:
    """One part with its leading delimiter line (CRLF-terminated)."""
    lines = [f"--{BOUNDARY}"]
    if name is not None:
        disposition = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        lines.append(disposition)
    lines += headers
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    data = content.encode("utf-8") if isinstance(content, str) else content
    return head + data + b"\r\n"


def form(*parts: bytes) -> bytes:
    """A whole body: the parts, then the closing delimiter."""
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


# -- the parser, sans-IO ------------------------------------------------------------------------

Parsed = list[tuple[tuple[tuple[str, str], ...], bytes]]


def parse(pieces: Iterable[bytes], boundary: str = BOUNDARY, **limits: Any) -> Parsed:
    """Feed `pieces` one at a time; the parts as (headers, content)."""
    parser = MultipartParser(boundary, FormLimits(**limits))
    parts: Parsed = []
    headers: tuple[tuple[str, str], ...] | None = None
    content = bytearray()

    def drain() -> bool:
        nonlocal headers
        while (event := parser.next_event()) is not NEED_DATA:
            if isinstance(event, PartStart):
                assert headers is None
                headers = event.headers
                content.clear()
            elif isinstance(event, bytes):
                assert event and headers is not None
                content.extend(event)
            elif event is PART_END:
                assert headers is not None
                parts.append((headers, bytes(content)))
                headers = None
            else:
                assert event is END and headers is None
                return True
        return False

    for piece in pieces:
        parser.feed(piece)
        assert not drain()
    parser.feed_eof()
    assert drain()
    assert parser.next_event() is END  # and it stays there
    return parts


SAMPLE = (
    b"This is the preamble.\r\n"
    + part("title", "caf\xe9 \r\n--xyzz not a boundary \n-- \r\n--xyzzz? no")[:-2]
    + b"\r\n"
    + part("empty")
    + part("file", b"\x00\r\n\r\r\n--xyz\r\n-\r\n--", filename="a.bin", headers=["X-A: 1"])
    + f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=bare\r\n\r\n".encode()
    + f'\r\n--{BOUNDARY}  \t\r\nContent-Disposition: form-data; name="pad"\r\n\r\nv'.encode()
    + f"\r\n--{BOUNDARY}-- \r\nand an epilogue\r\n".encode()
)
SAMPLE_PARTS: Parsed = [
    (
        (("Content-Disposition", 'form-data; name="title"'),),
        "caf\xe9 \r\n--xyzz not a boundary \n-- \r\n--xyzzz? no".encode(),
    ),
    ((("Content-Disposition", 'form-data; name="empty"'),), b""),
    (
        (
            ("Content-Disposition", 'form-data; name="file"; filename="a.bin"'),
            ("X-A", "1"),
        ),
        b"\x00\r\n\r\r\n--xyz\r\n-\r\n--",
    ),
    ((("Content-Disposition", "form-data; name=bare"),), b""),
    ((("Content-Disposition", 'form-data; name="pad"'),), b"v"),
]


def test_parser_sample_whole() -> None:
    assert parse([SAMPLE]) == SAMPLE_PARTS


def test_parser_every_split_point() -> None:
    for k in range(len(SAMPLE) + 1):
        assert parse([SAMPLE[:k], SAMPLE[k:]]) == SAMPLE_PARTS, k
    for k in range(len(SAMPLE) - 10):  # three pieces, the middle one short
        assert parse([SAMPLE[:k], SAMPLE[k : k + 7], SAMPLE[k + 7 :]]) == SAMPLE_PARTS, k


def test_parser_byte_by_byte() -> None:
    assert parse([bytes([b]) for b in SAMPLE]) == SAMPLE_PARTS


def test_parser_forms_of_empty_parts_and_bodies() -> None:
    # A part's empty line may be directly followed by the delimiter: no content.
    headers_only = f"--{BOUNDARY}\r\nA: b\r\n\r\n--{BOUNDARY}--".encode()
    assert parse([headers_only]) == [((("A", "b"),), b"")]
    no_headers = f"--{BOUNDARY}\r\n\r\n\r\nx\r\n--{BOUNDARY}--".encode()
    assert parse([no_headers]) == [((), b"\r\nx")]
    # An empty form, as browsers send it, with and without the final CRLF.
    assert parse([f"--{BOUNDARY}--\r\n".encode()]) == []
    assert parse([f"--{BOUNDARY}--".encode()]) == []
    # A preamble whose last line ends right before the first boundary.
    assert parse([f"\r\n--{BOUNDARY}\r\n\r\n\r\n--{BOUNDARY}--".encode()]) == [((), b"")]


def test_parser_hands_content_out_as_it_arrives() -> None:
    """Content is given out as fed, less a look-behind as long as the
    delimiter: the parser never collects a part."""
    parser = MultipartParser(BOUNDARY)
    parser.feed(f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=f\r\n\r\n".encode())
    assert isinstance(parser.next_event(), PartStart)
    given = fed = 0
    piece = bytes(range(256)) * 256
    for _ in range(64):  # 4 MiB
        parser.feed(piece)
        fed += len(piece)
        while (event := parser.next_event()) is not NEED_DATA:
            assert isinstance(event, bytes)
            given += len(event)
        assert fed - given <= len(f"\r\n--{BOUNDARY}")
    parser.feed(f"\r\n--{BOUNDARY}--".encode())
    parser.feed_eof()
    assert parser.next_event() == piece[given - fed :]
    assert parser.next_event() is PART_END
    assert parser.next_event() is END


def test_boundaries() -> None:
    for good in ("a", "x" * 70, "----WebKitFormBoundary7MA4YWxkTrZu0gW", "a b", "'()+_,-./:=?"):
        assert check_boundary(good) == good.encode()
    for bad in ("", "x" * 71, "a ", "a@b", 'a"b', "caf\xe9", "a\tb", "a;b"):
        with pytest.raises(MultipartError):
            check_boundary(bad)
        with pytest.raises(MultipartError):
            MultipartParser(bad)


def test_safe_filename() -> None:
    assert safe_filename("a.txt") == "a.txt"
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\Users\\me\\report.pdf") == "report.pdf"
    assert safe_filename("/abs/dir/") == ""
    assert safe_filename("..") == safe_filename("a/.") == ""
    assert safe_filename("na\xefve r\xe9sum\xe9.txt") == "na\xefve r\xe9sum\xe9.txt"


#: Bodies the parser refuses, by the rule they break (the content type is CTYPE).
MALFORMED_BODIES: dict[str, bytes] = {
    "empty body": b"",
    "no boundary at all": b"just some text\r\n",
    "bare LF line endings": form(part("a", "1")).replace(b"\r\n", b"\n"),
    "bare LF in part headers": (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=a\n\r\n1\r\n--{BOUNDARY}--".encode()
    ),
    "bare LF after a boundary": f"--{BOUNDARY}\nX: y\r\n\r\n\r\n--{BOUNDARY}--".encode(),
    "bare LF before a boundary": part("a", "1")[:-2] + f"\n--{BOUNDARY}--\r\n".encode(),
    "bare LF after the closing boundary": form(part("a", "1"))[:-2] + b"\n",
    "CR without LF after a boundary": f"--{BOUNDARY}\rX: y\r\n\r\n\r\n--{BOUNDARY}--".encode(),
    "ends inside a part": part("a", "1")[:-2],
    "ends after a part, no closing boundary": part("a", "1"),
    "ends inside part headers": f"--{BOUNDARY}\r\nContent-Disposition: form".encode(),
    "ends after a delimiter": part("a", "1") + f"--{BOUNDARY}".encode(),
    "ends after a single dash": part("a", "1") + f"--{BOUNDARY}-".encode(),
    "boundary followed by other bytes": form(part("a", "1")).replace(
        f"--{BOUNDARY}--".encode(), f"--{BOUNDARY}X--".encode()
    ),
    "closing boundary followed by other bytes": form(part("a", "1"))[:-2] + b"junk\r\n",
    "header line without colon": form(part("a", "1", headers=["No colon here"])),
    "obs-fold": form(part("a", "1", headers=["X-Long: one", " two"])),
    "space before the colon": form(part("a", "1", headers=["X-A : 1"])),
    "NUL in a header value": form(part("a", "1", headers=["X-A: a\x00b"])),
    "CR in a header value": form(part("a", "1", headers=["X-A: a\rb"])),
    "preamble too long": b"x" * 20000 + b"\r\n" + form(part("a", "1")),
    "epilogue too long": form(part("a", "1")) + b"x" * 20000,
    "part headers too long": form(part("a", "1", headers=["X-Big: " + "b" * 9000])),
    "too many part headers": form(part("a", "1", headers=[f"X-{i}: {i}" for i in range(40)])),
    "padding without end": form(part("a", "1")).replace(
        f"--{BOUNDARY}\r\n".encode(), f"--{BOUNDARY}{' ' * 200}\r\n".encode(), 1
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_BODIES))
def test_parser_refuses(case: str) -> None:
    body = MALFORMED_BODIES[case]
    with pytest.raises(MultipartError):
        parse([body])
    with pytest.raises(MultipartError):
        parse([bytes([b]) for b in body])


def test_parser_error_is_sticky() -> None:
    parser = MultipartParser(BOUNDARY)
    parser.feed(b"--" + BOUNDARY.encode() + b"\nX")
    with pytest.raises(MultipartError) as first:
        parser.next_event()
    with pytest.raises(MultipartError) as again:
        parser.next_event()
    assert again.value is first.value


def email_parts(ctype: str, body: bytes) -> list[tuple[str | None, str | None, bytes]]:
    """What the stdlib's email parser reads from a multipart body:
    (name, filename, content) per part."""
    head = f"Content-Type: {ctype}\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    assert isinstance(msg, EmailMessage) and not msg.defects
    out = []
    for sub in msg.iter_parts():
        assert isinstance(sub, EmailMessage) and not sub.defects
        name = sub.get_param("name", header="content-disposition")
        payload = sub.get_payload(decode=True)
        assert isinstance(payload, bytes)
        out.append((name if isinstance(name, str) else None, sub.get_filename(), payload))
    return out


def test_parser_agrees_with_email_package_on_random_bodies() -> None:
    """Random parts whose content is made of the bytes that matter (CR, LF,
    dashes, pieces of the boundary) but never the whole boundary, cut into
    random pieces: both parsers must see the parts that were written."""
    rng = random.Random(7578)
    tokens = [b"\r", b"\n", b"-", b"--", b"\r\n--", b"xyzz", b"x", b"y", b"\x00", b"\xff", b" "]
    for _ in range(300):
        expected = []
        parts = []
        for k in range(rng.randrange(1, 5)):
            content = b"".join(rng.choice(tokens) for _ in range(rng.randrange(0, 30)))
            while b"xyzzy" in content:  # RFC 2046: the boundary never occurs in content
                content = content.replace(b"xyzzy", b"xyzz-y")
            filename = f"file{k}.bin" if rng.random() < 0.5 else None
            expected.append((f"f{k}", filename, content))
            parts.append(part(f"f{k}", content, filename=filename))
        body = form(*parts)
        ours = []
        for headers, content in parse(_split(body, rng)):
            params = dict(_disposition(headers))
            ours.append((params.get("name"), params.get("filename"), content))
        assert ours == expected
        assert email_parts(CTYPE, body) == expected


def _split(body: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.randrange(len(body) + 1) for _ in range(rng.randrange(0, 6)))
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


def _disposition(headers: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """The quoted parameters of a part's Content-Disposition (test bodies only)."""
    value = dict(headers)["Content-Disposition"]
    pairs = []
    for param in value.split(";")[1:]:
        key, _, val = param.strip().partition("=")
        pairs.append((key, val.strip('"')))
    return pairs


# -- over real sockets -----------------------------------------------------------------------


def serve(
    loop: asyncio.AbstractEventLoop,
    app: web.Application,
    scenario: Callable[[TestClient], Awaitable[Any]],
    *,
    max_body_size: int | None = None,
) -> Any:
    """Run `scenario(client)` against `app` on a free port (the HTTP layer's
    body limit raised to `max_body_size` if given)."""

    async def main() -> Any:
        kwargs: dict[str, Any] = {}
        if max_body_size is not None:
            kwargs["config"] = ServerConfig(limits=Limits(max_body_size=max_body_size))
        async with TestClient(TestServer(app, **kwargs)) as client:
            return await scenario(client)

    return run(loop, main())


def describe(data: Any) -> dict[str, list[Any]]:
    """A form as JSON-able data: text as is, files as [filename, type, bytes]."""
    out: dict[str, list[Any]] = {}
    for key, value in data.items():
        if isinstance(value, web.FileField):
            content = value.file.read()
            value.file.close()
            value = [value.filename, value.content_type, content.decode("latin-1")]
        out.setdefault(key, []).append(value)
    return out


async def echo_form(request: web.Request) -> web.Response:
    return web.json_response(describe(await request.post()))


async def post_form(
    client: TestClient, body: bytes, ctype: str = CTYPE, path: str = "/form"
) -> ClientResponse:
    return await client.post(path, body=body, headers={"Content-Type": ctype})


async def raw_request(client: TestClient, data: bytes) -> ClientResponse:
    """Send `data` (a request head and as much body as wanted) on a connection
    of its own and read the response."""
    reader, writer = await asyncio.open_connection(client.server.host, client.port)
    try:
        writer.write(data)
        await writer.drain()
        return await read_response(reader, "POST")
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


def test_text_fields_and_repeated_names(loop: asyncio.AbstractEventLoop) -> None:
    app = web.Application()
    app.router.add_post("/form", echo_form)

    async def scenario(client: TestClient) -> None:
        body = form(
            part("title", "Caf\xe9 \u2615"),
            part("tag", "a"),
            part("empty", ""),
            part("tag", "b"),
            part("lines", "one\r\ntwo\r\n"),
            part("tag", "c"),
        )
        resp = await post_form(client, body)
        assert resp.status == 200, resp.text
        assert resp.json() == {
            "title": ["Caf\xe9 \u2615"],
            "tag": ["a", "b", "c"],
            "empty": [""],
            "lines": ["one\r\ntwo\r\n"],
        }
        # The order of fields is the order of parts.
        resp = await post_form(client, form(part("b", "2"), part("a", "1")))
        assert list(resp.json()) == ["b", "a"]
        # An empty form, and a quoted boundary.
        assert (await post_form(client, form())).json() == {}
        resp = await post_form(
            client, form(part("q", "1")), f'multipart/form-data; boundary="{BOUNDARY}"'
        )
        assert resp.json() == {"q": ["1"]}

    serve(loop, app, scenario)


def test_large_file_upload_goes_to_disk(loop: asyncio.AbstractEventLoop) -> None:
    blob = random.Random(2046).randbytes(5 * 1024 * 1024 + 17)
    small = b"small file\r\n--not the boundary\r\n"
    seen: dict[str, Any] = {}

    async def upload(request: web.Request) -> web.Response:
        data = await request.post()
        big, little = data["big"], data["little"]
        assert isinstance(big, web.FileField) and isinstance(little, web.FileField)
        # SpooledTemporaryFile has a name only once it has rolled over to disk.
        seen["big on disk"] = big.file.name is not None
        seen["little on disk"] = little.file.name is not None
        seen["little"] = little.file.read()
        seen["fields"] = (big.name, big.filename, big.content_type, little.content_type)
        seen["headers"] = big.headers["Content-Type"]
        seen["note"] = data["note"]
        content = big.file.read()
        big.file.close()
        little.file.close()
        return web.Response(body=content)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/upload", upload)

    async def scenario(client: TestClient) -> None:
        body = form(
            part("note", "before"),
            part("big", blob, filename="blob.bin", headers=["Content-Type: application/x-blob"]),
            part("little", small, filename="small.txt"),
        )
        resp = await post_form(client, body, path="/upload")
        assert resp.status == 200, resp.text[:200]
        assert hashlib.sha256(resp.body).digest() == hashlib.sha256(blob).digest()
        assert resp.body == blob
        assert seen == {
            "big on disk": True,
            "little on disk": False,
            "little": small,
            "fields": ("big", "blob.bin", "application/x-blob", "application/octet-stream"),
            "headers": "application/x-blob",
            "note": "before",
        }

    serve(loop, app, scenario, max_body_size=32 * 1024 * 1024)


def test_filenames(loop: asyncio.AbstractEventLoop) -> None:
    app = web.Application()
    app.router.add_post("/form", echo_form)

    def file_part(disposition: str | bytes, content: bytes = b"data") -> bytes:
        raw = disposition.encode() if isinstance(disposition, str) else disposition
        return (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; ".encode()
            + raw
            + b"\r\n\r\n"
            + content
            + b"\r\n"
        )

    async def scenario(client: TestClient) -> None:
        body = form(
            file_part('name="a"; filename="../../etc/passwd"'),
            file_part('name="b"; filename="C:\\Users\\me\\report.pdf"'),
            file_part('name="c"; filename="dir/sub/x.txt"'),
            file_part(
                'name="d"; filename="fallback.txt"; filename*=UTF-8\'\'%E2%82%AC%20rates.txt'
            ),
            file_part("name=\"e\"; filename*=iso-8859-1'en'caf%E9.txt"),
            file_part('name="f"; filename="na\xefve.txt"'),  # raw UTF-8, as browsers send
            file_part(b'name="k"; filename="caf\xe9.txt"'),  # not UTF-8: read as Latin-1
            file_part('name="g"; filename=""', b""),
            file_part('name="h"; filename="say \\"hi\\".txt"'),
            file_part("name=i; filename=token.txt"),
            file_part("name=\"j\"; filename*=UTF-8''..%2F..%2Fescape.sh"),
        )
        resp = await post_form(client, body)
        assert resp.status == 200, resp.text
        names = {k: v[0][0] for k, v in resp.json().items()}
        assert names == {
            "a": "passwd",
            "b": "report.pdf",
            "c": "x.txt",
            "d": "\u20ac rates.txt",
            "e": "caf\xe9.txt",
            "f": "na\xefve.txt",
            "g": "",
            "h": 'say "hi".txt',
            "i": "token.txt",
            "j": "escape.sh",
            "k": "caf\xe9.txt",
        }
        assert resp.json()["g"] == [["", "application/octet-stream", ""]]

    serve(loop, app, scenario)


def test_charsets(loop: asyncio.AbstractEventLoop) -> None:
    app = web.Application()
    app.router.add_post("/form", echo_form)

    async def scenario(client: TestClient) -> None:
        latin = ["Content-Type: text/plain; charset=iso-8859-1"]
        body = form(part("a", b"caf\xe9", headers=latin), part("b", "caf\xe9"))
        assert (await post_form(client, body)).json() == {"a": ["caf\xe9"], "b": ["caf\xe9"]}
        # `_charset_` sets the default for parts without a charset, wherever it is.
        body = form(
            part("a", b"caf\xe9 \x80"),
            part("_charset_", "windows-1252"),
            part("b", "\u20ac", headers=['Content-Type: text/plain; charset="utf-8"']),
        )
        resp = await post_form(client, body)
        assert resp.json() == {
            "a": ["caf\xe9 \u20ac"],
            "_charset_": ["windows-1252"],
            "b": ["\u20ac"],
        }
        # Not valid in its charset, or an unknown charset: 400.
        for bad in (
            form(part("a", b"caf\xe9")),
            form(part("a", "x", headers=["Content-Type: text/plain; charset=no-such"])),
            form(part("a", "x"), part("_charset_", "no-such")),
        ):
            resp = await post_form(client, bad)
            assert resp.status == 400, resp.text
        assert (await post_form(client, form(part("a", "ok")))).json() == {"a": ["ok"]}

    serve(loop, app, scenario)


#: Requests `request.post()` must answer with 400: (Content-Type, body).
MALFORMED_REQUESTS: dict[str, tuple[str, bytes]] = {
    **{case: (CTYPE, body) for case, body in MALFORMED_BODIES.items()},
    "no boundary parameter": ("multipart/form-data", form(part("a", "1"))),
    "empty boundary": ("multipart/form-data; boundary=", form(part("a", "1"))),
    "empty quoted boundary": ('multipart/form-data; boundary=""', b"--\r\n\r\n\r\n----"),
    "boundary too long": (
        f"multipart/form-data; boundary={'b' * 71}",
        f"--{'b' * 71}\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n"
        f"--{'b' * 71}--".encode(),
    ),
    "boundary with a bad character": (
        'multipart/form-data; boundary="a@b"',
        b"--a@b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--a@b--",
    ),
    "boundary ending in a space": (
        'multipart/form-data; boundary="ab "',
        b"--ab \r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--ab --",
    ),
    "boundary not a token, unquoted": (
        "multipart/form-data; boundary=a:b",
        b"--a:b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--a:b--",
    ),
    "boundary twice": (CTYPE + "; boundary=other", form(part("a", "1"))),
    "no Content-Disposition": (CTYPE, form(part(None, "1", headers=["X-A: 1"]))),
    "Content-Disposition twice": (
        CTYPE,
        form(part("a", "1", headers=['Content-Disposition: form-data; name="b"'])),
    ),
    "disposition not form-data": (
        CTYPE,
        form(part(None, "1", headers=['Content-Disposition: attachment; name="a"'])),
    ),
    "no name": (CTYPE, form(part(None, "1", headers=['Content-Disposition: form-data; x="a"']))),
    "name twice": (
        CTYPE,
        form(part(None, "1", headers=['Content-Disposition: form-data; name="a"; name="b"'])),
    ),
    "unterminated quoted-string": (
        CTYPE,
        form(part(None, "1", headers=['Content-Disposition: form-data; name="a'])),
    ),
    "parameter without a value": (
        CTYPE,
        form(part(None, "1", headers=["Content-Disposition: form-data; name"])),
    ),
    "spaces around =": (
        CTYPE,
        form(part(None, "1", headers=['Content-Disposition: form-data; name = "a"'])),
    ),
    "name too long": (CTYPE, form(part("n" * 1025, "1"))),
    "filename* with another charset": (
        CTYPE,
        form(
            part("a", "1", headers=[], filename=None).replace(
                b'name="a"', b"name=\"a\"; filename*=koi8-r''abc"
            )
        ),
    ),
    "filename* with a bad percent-escape": (
        CTYPE,
        form(part("a", "1").replace(b'name="a"', b"name=\"a\"; filename*=UTF-8''%zz.txt")),
    ),
    "filename* not UTF-8": (
        CTYPE,
        form(part("a", "1").replace(b'name="a"', b"name=\"a\"; filename*=UTF-8''%ff.txt")),
    ),
    "filename* with a control character": (
        CTYPE,
        form(part("a", "1").replace(b'name="a"', b"name=\"a\"; filename*=UTF-8''a%0Ab.txt")),
    ),
    "filename* quoted": (
        CTYPE,
        form(part("a", "1").replace(b'name="a"', b'name="a"; filename*="UTF-8\'\'a.txt"')),
    ),
    "nested multipart": (
        CTYPE,
        form(part("a", "1", headers=["Content-Type: multipart/mixed; boundary=inner"])),
    ),
    "malformed part Content-Type": (CTYPE, form(part("a", "1", headers=["Content-Type: text"]))),
    "base64 transfer encoding": (
        CTYPE,
        form(part("a", "MQ==", headers=["Content-Transfer-Encoding: base64"])),
    ),
    "field not UTF-8": (CTYPE, form(part("a", b"\xff\xfe"))),
}


#: Why each of MALFORMED_REQUESTS is refused (the 400's text says it).
REASONS: dict[str, str] = {
    "CR in a header value": "control character in a part header value",
    "CR without LF after a boundary": "CR without LF after a boundary",
    "Content-Disposition twice": "repeated Content-Disposition in a part",
    "NUL in a header value": "control character in a part header value",
    "bare LF after a boundary": "bare LF after a boundary",
    "bare LF after the closing boundary": "bare LF after the closing boundary",
    "bare LF before a boundary": "bare LF before a boundary",
    "bare LF in part headers": "bare LF in part headers",
    "bare LF line endings": "bare LF after a boundary",
    "base64 transfer encoding": "Content-Transfer-Encoding other than 7bit, 8bit or binary",
    "boundary ending in a space": "boundary ends with a space",
    "boundary followed by other bytes": "unexpected bytes after a boundary",
    "boundary not a token, unquoted": "malformed Content-Type parameters",
    "boundary too long": "boundary must be 1-70 characters, not 71",
    "boundary twice": "repeated 'boundary' parameter in Content-Type",
    "boundary with a bad character": "boundary has a character RFC 2046 does not allow",
    "closing boundary followed by other bytes": "unexpected bytes after the closing boundary",
    "disposition not form-data": "Content-Disposition of a part is not form-data",
    "empty body": "body ended before the first boundary",
    "empty boundary": "malformed Content-Type parameters",
    "empty quoted boundary": "boundary must be 1-70 characters, not 0",
    "ends after a delimiter": "body ended in a boundary line, before the closing boundary",
    "ends after a part, no closing boundary": "body ended in a part, before the closing boundary",
    "ends after a single dash": "body ended in a boundary line, before the closing boundary",
    "ends inside a part": "body ended in a part, before the closing boundary",
    "ends inside part headers": "body ended in part headers, before the closing boundary",
    "epilogue too long": "epilogue longer than 16384 bytes",
    "field not UTF-8": "form field is not utf-8",
    "filename* not UTF-8": "filename* is not valid UTF-8",
    "filename* quoted": "filename* value is quoted",
    "filename* with a bad percent-escape": "malformed filename* value",
    "filename* with a control character": "control character in filename*",
    "filename* with another charset": "filename* charset must be UTF-8 or ISO-8859-1",
    "header line without colon": "part header line without a colon",
    "malformed part Content-Type": "malformed part Content-Type",
    "name too long": "field name longer than 1024 characters",
    "name twice": "repeated 'name' parameter in Content-Disposition",
    "nested multipart": "nested multipart parts are not supported",
    "no Content-Disposition": "part without Content-Disposition",
    "no boundary at all": "body ended before the first boundary",
    "no boundary parameter": "no boundary parameter in Content-Type",
    "no name": "form-data part without a name",
    "obs-fold": "folded header line (obs-fold) in a part",
    "padding without end": "more than 128 bytes of padding after a boundary",
    "parameter without a value": "malformed Content-Disposition parameters",
    "part headers too long": "part headers longer than 8192 bytes",
    "preamble too long": "preamble longer than 16384 bytes",
    "space before the colon": "invalid part header name",
    "spaces around =": "malformed Content-Disposition parameters",
    "too many part headers": "more than 32 headers in a part",
    "unterminated quoted-string": "malformed Content-Disposition parameters",
}


def test_malformed_requests_are_400(loop: asyncio.AbstractEventLoop) -> None:
    app = web.Application()
    app.router.add_post("/form", echo_form)

    assert sorted(REASONS) == sorted(MALFORMED_REQUESTS)

    async def scenario(client: TestClient) -> None:
        for case, (ctype, body) in sorted(MALFORMED_REQUESTS.items()):
            resp = await post_form(client, body, ctype)
            assert resp.status == 400, (case, resp.status, resp.text)
            assert resp.text == f"400: Bad Request ({REASONS[case]})", case
            # ... and the server goes on serving.
            resp = await post_form(client, form(part("ok", case)))
            assert (resp.status, resp.json()) == (200, {"ok": [case]}), case

    serve(loop, app, scenario)


def test_limits(loop: asyncio.AbstractEventLoop) -> None:
    limits = FormLimits(max_parts=3, max_field_size=10, max_name_length=4, spool_threshold=5)

    async def limited(request: web.Request) -> web.Response:
        return web.json_response(describe(await read_form(request, limits=limits)))

    app = web.Application(client_max_size=2000)
    app.router.add_post("/form", echo_form)
    app.router.add_post("/limited", limited)

    async def scenario(client: TestClient) -> None:
        async def status(body: bytes, path: str = "/limited") -> int:
            return (await post_form(client, body, path=path)).status

        assert await status(form(part("a", "1"), part("b", "2"), part("c", "3"))) == 200
        assert await status(form(*[part("a", "1")] * 4)) == 413
        assert await status(form(part("a", "x" * 10))) == 200
        assert await status(form(part("a", "x" * 11))) == 413
        # Files are not text fields: only the body limit bounds them.
        assert await status(form(part("a", "x" * 1000, filename="f"))) == 200
        assert await status(form(part("name", "1"))) == 200
        assert await status(form(part("names", "1"))) == 400
        # The application's client_max_size counts every byte of the body.
        assert await status(form(part("a", "x" * 1800, filename="f")), "/form") == 200
        resp = await post_form(client, form(part("a", "x" * 2000, filename="f")))
        assert resp.status == 413
        assert "Maximum request body size 2000 exceeded" in resp.text
        assert await status(form(part("a", "1")), "/form") == 200
        # read_form reads form-data only (post() gives {} for other types).
        mixed = f"multipart/mixed; boundary={BOUNDARY}"
        assert (await post_form(client, form(part("a", "1")), mixed, "/limited")).status == 400

    serve(loop, app, scenario)


def test_size_limit_answers_before_the_body_is_read(loop: asyncio.AbstractEventLoop) -> None:
    """Over client_max_size the answer is 413 while most of the body has not
    even been sent: the form is never collected in memory."""
    seen: dict[str, Any] = {}

    async def upload(request: web.Request) -> web.Response:
        try:
            data = await request.post()
        except web.HTTPRequestEntityTooLarge:
            seen["at_eof"] = request.content.at_eof()
            raise
        describe(data)  # closes the file
        return web.Response(text="read it all?")

    app = web.Application(client_max_size=64 * 1024)
    app.router.add_post("/upload", upload)

    async def scenario(client: TestClient) -> None:
        body = form(part("f", b"z" * (8 * 1024 * 1024), filename="big.bin"))
        head = (
            f"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Type: {CTYPE}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        # Send a tenth of the body and wait: the answer comes anyway.
        resp = await raw_request(client, head + body[: len(body) // 10])
        assert resp.status == 413
        assert seen == {"at_eof": False}
        resp = await post_form(client, form(part("f", b"small", filename="s")), path="/upload")
        assert (resp.status, resp.text) == (200, "read it all?")

    serve(loop, app, scenario, max_body_size=16 * 1024 * 1024)


def test_body_over_the_http_limit_is_413(loop: asyncio.AbstractEventLoop) -> None:
    """A chunked body the HTTP layer cuts off (its own limit) is a 413 from the
    form reader too, not a 500."""
    app = web.Application(client_max_size=10 * 1024 * 1024)
    app.router.add_post("/form", echo_form)

    async def scenario(client: TestClient) -> None:
        body = form(part("f", b"z" * 300_000, filename="big.bin"))
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 8192]), body[i : i + 8192])
            for i in range(0, len(body), 8192)
        )
        head = (
            f"POST /form HTTP/1.1\r\nHost: test\r\nContent-Type: {CTYPE}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
        resp = await raw_request(client, head + chunks + b"0\r\n\r\n")
        assert resp.status == 413
        assert "chunked body exceeds the limit" in resp.text
        resp = await post_form(client, form(part("a", "1")))
        assert resp.json() == {"a": ["1"]}

    serve(loop, app, scenario, max_body_size=100_000)


def test_streaming_reader(loop: asyncio.AbstractEventLoop) -> None:
    async def stream(request: web.Request) -> web.Response:
        out: list[Any] = []
        reader = await request.multipart()
        async for p in reader:
            entry: dict[str, Any] = {"name": p.name, "filename": p.filename}
            if p.name == "chunks":
                pieces = []
                while chunk := await p.read_chunk(7):
                    assert len(chunk) <= 7
                    pieces.append(chunk.decode())
                entry["pieces"] = pieces
                assert p.at_eof() and await p.read_chunk() == b""
            elif p.name == "iter":
                entry["text"] = b"".join([c async for c in p]).decode()
            elif p.name == "json":
                entry["json"] = await p.json()
            elif p.name == "form":
                entry["form"] = await p.form()
            elif p.name == "latin":
                entry["text"] = await p.text()
                entry["charset"] = p.get_charset("utf-8")
            elif p.name == "skipped":
                entry["first"] = (await p.read_chunk(3)).decode()  # the rest is skipped
            elif p.name == "released":
                await p.release()
                entry["after"] = (await p.read()).decode()
            else:
                entry["headers"] = list(p.headers.items())
                entry["text"] = await p.text()
            out.append(entry)
        assert reader.at_eof() and await reader.next() is None
        return web.json_response(out)

    app = web.Application()
    app.router.add_post("/stream", stream)

    async def scenario(client: TestClient) -> None:
        body = form(
            part("chunks", "abcdefghijklmnopqrstuvwxyz"),
            part("iter", "x" * 200_000, filename="x.txt"),
            part("json", '{"a": [1, 2]}', headers=["Content-Type: application/json"]),
            part("form", "a=1&b=caf%C3%A9&a=", headers=["X-Form: yes"]),
            part("latin", b"caf\xe9", headers=["Content-Type: text/plain; charset=latin-1"]),
            part("skipped", "0123456789" * 10_000),
            part("released", "gone"),
            part("plain", "last", headers=["X-Extra: 1"]),
        )
        resp = await post_form(client, body, path="/stream")
        assert resp.status == 200, resp.text
        assert resp.json() == [
            {
                "name": "chunks",
                "filename": None,
                "pieces": ["abcdefg", "hijklmn", "opqrstu", "vwxyz"],
            },
            {"name": "iter", "filename": "x.txt", "text": "x" * 200_000},
            {"name": "json", "filename": None, "json": {"a": [1, 2]}},
            {"name": "form", "filename": None, "form": [["a", "1"], ["b", "caf\xe9"], ["a", ""]]},
            {"name": "latin", "filename": None, "text": "caf\xe9", "charset": "latin-1"},
            {"name": "skipped", "filename": None, "first": "012"},
            {"name": "released", "filename": None, "after": ""},
            {
                "name": "plain",
                "filename": None,
                "headers": [
                    ["Content-Disposition", 'form-data; name="plain"'],
                    ["X-Extra", "1"],
                ],
                "text": "last",
            },
        ]
        # Errors surface where the handler reads: a bad body is a 400 there too.
        bad = form(part("a", "1")).replace(b"\r\n", b"\n")
        assert (await post_form(client, bad, path="/stream")).status == 400
        resp = await post_form(client, form(part("a", "1")), "text/plain", path="/stream")
        assert resp.status == 400
        resp = await post_form(client, form(part("a", "1")), path="/stream")
        assert resp.json()[0]["text"] == "1"

    serve(loop, app, scenario)


def test_streaming_reader_other_multipart_types(loop: asyncio.AbstractEventLoop) -> None:
    """multipart/mixed and friends stream too; only form-data needs names."""

    async def stream(request: web.Request) -> web.Response:
        reader = await request.multipart()
        out = []
        while (p := await reader.next()) is not None:
            out.append([p.name, p.headers.get("Content-Type"), await p.text()])
        return web.json_response(out)

    app = web.Application()
    app.router.add_post("/stream", stream)

    async def scenario(client: TestClient) -> None:
        body = form(
            part(None, "one", headers=["Content-Type: text/plain"]),
            part(None, "two", headers=['Content-Disposition: attachment; filename="a.txt"']),
        )
        resp = await post_form(client, body, f"multipart/mixed; boundary={BOUNDARY}", "/stream")
        assert resp.json() == [[None, "text/plain", "one"], [None, None, "two"]]

    serve(loop, app, scenario)


def email_form(fields: list[tuple[str, str | bytes, str | None]]) -> tuple[str, bytes]:
    """A form built by the stdlib's email generator: (Content-Type, body)."""
    msg = MIMEMultipart("form-data")
    for name, value, filename in fields:
        sub: EmailMessage | MIMEApplication
        if isinstance(value, str):
            sub = EmailMessage()
            sub.set_content(value, cte="8bit")
            del sub["MIME-Version"]
            sub.add_header("Content-Disposition", "form-data", name=name)
        else:
            # encode_noop: the bytes as they are (no CR or LF in them: the
            # generator would rewrite line endings).
            sub = MIMEApplication(value, _encoder=encoders.encode_noop)
            sub.add_header("Content-Disposition", "form-data", name=name, filename=filename)
        msg.attach(sub)
    out = io.BytesIO()
    email.generator.BytesGenerator(out, policy=email.policy.HTTP).flatten(msg)  # type: ignore[arg-type]
    head, _, body = out.getvalue().partition(b"\r\n\r\n")
    ctype = msg["Content-Type"]
    assert isinstance(ctype, str) and b"Content-Type" in head
    return ctype, body


def test_differential_email_generator(loop: asyncio.AbstractEventLoop) -> None:
    """A body from the email package's generator (its own boundary, quoted,
    RFC 2231 filenames, per-part charsets), read by `request.post()`, by the
    streaming reader and by the email package's parser: all three agree."""
    rng = random.Random(2388)
    blob = bytes(b for b in rng.randbytes(300_000) if b not in b"\r\n")

    async def streamed(request: web.Request) -> web.Response:
        out = []
        async for p in await request.multipart():
            out.append([p.name, p.filename, (await p.read()).decode("latin-1")])
        return web.json_response(out)

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/form", echo_form)
    app.router.add_post("/stream", streamed)

    async def scenario(client: TestClient) -> None:
        fields: list[tuple[str, str | bytes, str | None]] = [
            ("drink", "caf\xe9 au lait\nsecond line", None),
            ("upload", blob, "na\xefve r\xe9sum\xe9.bin"),
            ("drink", "th\xe9", None),
            ("empty", b"", "empty.txt"),
        ]
        ctype, body = email_form(fields)
        assert 'boundary="' in ctype
        reference = email_parts(ctype, body)
        assert [(n, f) for n, f, _ in reference] == [(n, f) for n, _, f in fields]

        resp = await post_form(client, body, ctype)
        assert resp.status == 200, resp.text
        got = resp.json()
        assert got["drink"] == [c.decode("utf-8") for n, _, c in reference if n == "drink"]
        assert got["drink"][0] == "caf\xe9 au lait\r\nsecond line\r\n"
        assert got["upload"] == [
            ["na\xefve r\xe9sum\xe9.bin", "application/octet-stream", blob.decode("latin-1")]
        ]
        assert got["empty"] == [["empty.txt", "application/octet-stream", ""]]

        resp = await post_form(client, body, ctype, path="/stream")
        assert resp.json() == [[n, f, c.decode("latin-1")] for n, f, c in reference]

    serve(loop, app, scenario)


def test_handler_reads_form_twice(loop: asyncio.AbstractEventLoop) -> None:
    """`request.post()` is read once and cached, as aiohttp's."""

    async def twice(request: web.Request) -> web.Response:
        first = await request.post()
        second = await request.post()
        assert first is second
        return web.json_response(describe(first))

    app = web.Application()
    app.router.add_post("/twice", twice)

    async def scenario(client: TestClient) -> None:
        resp = await post_form(client, form(part("a", "1")), path="/twice")
        assert resp.json() == {"a": ["1"]}
        assert json.loads(resp.body) == {"a": ["1"]}

    serve(loop, app, scenario)
