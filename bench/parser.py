"""Request-head parsing speed: Treadle's sans-IO parser against llhttp and h11.

    .venv/bin/python bench/parser.py

Each parser gets the same six-header GET (as a browser might send) fed whole,
once per iteration, with a fresh parser state each time, so Treadle's
repeated-header-block memo does not apply (a second row shows it applied:
the same head again on one connection, as keep-alive traffic is). Best of 5
runs; printed: heads per second and Treadle's ratio. httptools (llhttp) and
h11 come with the `test` extra.
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

# bench/http.py would hide the stdlib's `http` package: put the repository
# root first instead of this folder.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from treadle.http import RequestParser  # noqa: E402

HEAD = (
    b"GET /hello/world?q=1 HTTP/1.1\r\n"
    b"Host: localhost:8080\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/130.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)


def treadle_fresh() -> None:
    parser = RequestParser()
    parser.feed(HEAD)
    parser.next_event()


_conn = RequestParser()


def treadle_keep_alive() -> None:
    _conn.feed(HEAD)
    _conn.next_event()  # the request
    _conn.next_event()  # its end (no body)


def per_second(fn: object, number: int = 20_000) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=5))  # type: ignore[arg-type]
    return number / best


def main() -> None:
    rows: list[tuple[str, float]] = [
        ("treadle (fresh parser per head)", per_second(treadle_fresh)),
        ("treadle (keep-alive, same block)", per_second(treadle_keep_alive)),
    ]
    try:
        import httptools

        class Sink:
            def on_url(self, url: bytes) -> None:
                pass

            def on_header(self, name: bytes, value: bytes) -> None:
                pass

        def llhttp() -> None:
            httptools.HttpRequestParser(Sink()).feed_data(HEAD)

        rows.append(("llhttp (httptools, C)", per_second(llhttp)))
    except ImportError:
        print("httptools not installed: skipped")
    try:
        import h11

        def h11_parse() -> None:
            conn = h11.Connection(h11.SERVER)
            conn.receive_data(HEAD)
            conn.next_event()

        rows.append(("h11", per_second(h11_parse, number=5_000)))
    except ImportError:
        print("h11 not installed: skipped")
    base = rows[0][1]
    print(f"Python {sys.version.split()[0]}: request heads per second (best of 5)")
    for name, rate in rows:
        print(f"  {name:<34} {rate:>12,.0f}   {rate / base:5.2f}x treadle (fresh)")


if __name__ == "__main__":
    main()
