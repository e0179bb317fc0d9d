"""Treadle's event loop: an `asyncio.AbstractEventLoop` written in Python.

`EventLoop` is assembled from one module per concern: `core` (scheduling, the run
loop, errors, fd readiness, executor), `sockets` (the `sock_*` coroutines) and
`signals`. Networking (transports, servers, TLS, subprocesses) comes in its own
modules; until then those methods raise `NotImplementedError`, as
`asyncio.AbstractEventLoop` does.
"""

from __future__ import annotations

from .core import BaseEventLoop
from .handles import Handle, TimerHandle
from .poller import available_pollers
from .signals import SignalsMixin
from .sockets import SocketsMixin
from .subprocess import SubprocessMixin

__all__ = ["BaseEventLoop", "EventLoop", "Handle", "TimerHandle", "available_pollers"]


class EventLoop(SocketsMixin, SignalsMixin, SubprocessMixin):
    """Treadle's event loop. Use it wherever asyncio takes a loop:
    `asyncio.Runner(loop_factory=treadle.EventLoop)`, `treadle.run(main())`."""
