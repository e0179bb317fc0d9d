"""Subprocesses and pipes on Treadle's loop (being written; see issue 5).

Pipes are done: `connect_read_pipe` and `connect_write_pipe` come from
`pipes.PipesMixin`. Until subprocesses are, `subprocess_exec` and
`subprocess_shell` raise `NotImplementedError`, as `asyncio.AbstractEventLoop` does.
"""

from __future__ import annotations

from .pipes import PipesMixin

__all__ = ["SubprocessMixin"]


class SubprocessMixin(PipesMixin):
    """Pipe transports, subprocess transports and child-exit watching."""
