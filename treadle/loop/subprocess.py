"""Subprocesses and pipes on Treadle's loop (being written; see issue 5).

Until this module is complete, `subprocess_exec`, `subprocess_shell`,
`connect_read_pipe` and `connect_write_pipe` raise `NotImplementedError`, as
`asyncio.AbstractEventLoop` does.
"""

from __future__ import annotations

from .core import BaseEventLoop

__all__ = ["SubprocessMixin"]


class SubprocessMixin(BaseEventLoop):
    """Pipe transports, subprocess transports and child-exit watching."""
