"""Fixtures of the HTTP tests.

`parser_impl` runs a test twice: with the parser's optional C fast path
(treadle/http/_speedups.c) and without it, so both give the same verdicts. In
CI (`CI` set) a missing C fast path is a failure, not a skip: CI builds it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from treadle.http import parser as parser_module

SCAN_HEAD = parser_module._scan_head
SCAN_CHUNKS = parser_module._scan_chunks


@contextmanager
def pure_python_parser() -> Iterator[None]:
    """The parser without its C fast path, for the duration."""
    saved = parser_module._scan_head, parser_module._scan_chunks
    parser_module._scan_head = parser_module._scan_chunks = None
    try:
        yield
    finally:
        parser_module._scan_head, parser_module._scan_chunks = saved


def require_speedups() -> None:
    """Skip (or in CI fail) a test that needs the C fast path built."""
    if SCAN_HEAD is None or SCAN_CHUNKS is None:
        if os.environ.get("CI"):
            pytest.fail("treadle.http._speedups was not built")
        pytest.skip("treadle.http._speedups is not built (no C compiler at install)")


@pytest.fixture(params=["c", "python"])
def parser_impl(request: pytest.FixtureRequest) -> Iterator[str]:
    """'c' (the C fast path on) or 'python' (the parser's own code only)."""
    if request.param == "python":
        with pure_python_parser():
            yield "python"
    else:
        require_speedups()
        yield "c"
