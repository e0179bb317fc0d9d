"""Router matching cost as the route table grows: 10, 100 and 1,000 routes of
each of four kinds.

    .venv/bin/python bench/router.py

For each table size, `UrlDispatcher.resolve()` is timed (best of 5 runs) for:
- a plain path (`/static/N`), the last one registered;
- a pattern (`/users/N/{id}`), the last one registered, and a pattern in a
  table of patterns that share their first segment (`/api/{id}/N`: one
  bucket holds them all, the worst case for bucketing), and the same with a
  custom regex (`/num/{id:\\d+}/N`);
- a miss (404).
Printed: nanoseconds per resolve. Plain paths are a dict lookup, patterns are
bucketed by first segment and long buckets go through a segment trie, so no
column should grow with the table.
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

# The script's own folder holds bench/http.py, which would hide the stdlib's
# `http`: put the repository root there instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from treadle import web  # noqa: E402
from treadle.web.exceptions import HTTPNotFound  # noqa: E402


async def handler(request: web.Request) -> web.Response:
    return web.Response(text="x")


def build(n: int) -> web.UrlDispatcher:
    router = web.Application().router
    for i in range(n):
        router.add_get(f"/static/{i}", handler)
        router.add_get(f"/users{i}/{{id}}", handler)
        router.add_get(f"/api/{{id}}/n{i}", handler)
        router.add_get(f"/num/{{id:\\d+}}/n{i}", handler)
    return router


def per_call(fn: object, number: int = 20_000) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=5))  # type: ignore[arg-type]
    return best / number * 1e9


def measure(n: int) -> list[float]:
    """ns per resolve for a table of 4 x n routes: plain, pattern, shared bucket,
    shared bucket of custom-regex patterns, miss."""
    router = build(n)
    last = n - 1

    def miss() -> None:
        try:
            router.resolve("GET", "/nowhere/at/all")
        except HTTPNotFound:
            pass

    return [
        per_call(lambda: router.resolve("GET", f"/static/{last}")),
        per_call(lambda: router.resolve("GET", f"/users{last}/42")),
        per_call(lambda: router.resolve("GET", f"/api/42/n{last}"), number=2_000),
        per_call(lambda: router.resolve("GET", f"/num/42/n{last}"), number=2_000),
        per_call(miss),
    ]


def main() -> None:
    print(f"Python {sys.version.split()[0]}: ns per resolve()")
    print(
        f"{'routes':>8} {'plain':>10} {'pattern':>10} {'same bucket':>12}"
        f" {'regex bucket':>13} {'miss':>10}"
    )
    for n in (10, 100, 1000):
        plain, pattern, bucket, regex_bucket, miss = measure(n)
        print(
            f"{4 * n:>8} {plain:>10.0f} {pattern:>10.0f} {bucket:>12.0f}"
            f" {regex_bucket:>13.0f} {miss:>10.0f}"
        )


if __name__ == "__main__":
    main()
