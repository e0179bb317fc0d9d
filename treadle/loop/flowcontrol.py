"""Write-buffer flow control, shared by every transport that buffers writes.

A transport tells its protocol to stop writing (`pause_writing()`) once more
than the high-water mark is buffered, and to go on (`resume_writing()`) once
the buffer drains to the low-water mark. The marks, their defaults and their
validation are asyncio's; they live here once for socket, datagram, pipe and
TLS transports.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_HIGH_WATER", "WriteFlowControl", "buffer_limits"]

#: asyncio's default high-water mark for a transport's write buffer.
DEFAULT_HIGH_WATER = 64 * 1024


def buffer_limits(
    high: int | None, low: int | None, default_high: int = DEFAULT_HIGH_WATER
) -> tuple[int, int]:
    """(high, low) from optional arguments: `high` defaults to `default_high`
    (or 4 x `low`), `low` to a quarter of `high`; `high >= low >= 0` or
    ValueError."""
    if high is None:
        high = default_high if low is None else 4 * low
    if low is None:
        low = high // 4
    if not high >= low >= 0:
        raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
    return high, low


class WriteFlowControl:
    """Mixin for a write transport. The class using it provides
    `get_write_buffer_size()`, `_protocol`, and `_flow_control_failed(name,
    exc)` to report a protocol callback that raised."""

    _protocol: Any
    _high_water = DEFAULT_HIGH_WATER
    _low_water = DEFAULT_HIGH_WATER // 4
    _protocol_paused = False

    def get_write_buffer_size(self) -> int:
        raise NotImplementedError

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """(low, high) water marks of the write buffer."""
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Pause the protocol's writing above `high` buffered bytes, resume it
        at `low` or below (defaults: 64 KiB and a quarter of `high`)."""
        self._high_water, self._low_water = buffer_limits(high, low)
        self._maybe_pause_protocol()

    def _maybe_pause_protocol(self) -> None:
        if self._protocol_paused or self.get_write_buffer_size() <= self._high_water:
            return
        self._protocol_paused = True
        self._call_flow_control("pause_writing")

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and self.get_write_buffer_size() <= self._low_water:
            self._protocol_paused = False
            self._call_flow_control("resume_writing")

    def _call_flow_control(self, name: str) -> None:
        try:
            getattr(self._protocol, name)()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._flow_control_failed(name, exc)

    def _flow_control_failed(self, name: str, exc: BaseException) -> None:
        raise NotImplementedError
