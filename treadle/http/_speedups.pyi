"""Types of the parser's optional C fast path (treadle/http/_speedups.c)."""

from typing import Literal

def scan_head(
    buf: bytes, pos: int, last: bytes | None, limits: tuple[int, int, int, int], /
) -> tuple[str, str, int, bytes, bytes | None, int] | Literal[False] | None:
    """The common request head at buf[pos:]: see _speedups.c."""

def scan_chunks(
    buf: bytes, pos: int, budget: int, max_chunk_line: int, /
) -> tuple[bytes, int, bool]:
    """The whole, valid chunks at buf[pos:]: see _speedups.c."""
