"""Treadle's event loop: an `asyncio.AbstractEventLoop` written in Python.

`EventLoop` is assembled from one module per concern, each a mixin on
`core.BaseEventLoop`:

- `core`: scheduling, the run loop, errors, fd readiness, executor, asyncgens
  (with `handles` and `poller` under it);
- `sockets`: the `sock_*` coroutines and name resolution;
- `streams`: TCP/Unix connections and servers (`transports`, `servers`),
  `start_tls` and `sendfile`; `tls` is TLS as a protocol layer;
- `datagram`: UDP and Unix datagram endpoints;
- `pipes` and `subprocess`: pipe transports and child processes;
- `signals`: Unix signal handlers.
"""

from __future__ import annotations

from .core import BaseEventLoop
from .datagram import DatagramMixin
from .handles import Handle, TimerHandle
from .poller import available_pollers
from .servers import Server
from .signals import SignalsMixin
from .sockets import SocketsMixin
from .streams import StreamsMixin
from .subprocess import SubprocessMixin

__all__ = ["BaseEventLoop", "EventLoop", "Handle", "Server", "TimerHandle", "available_pollers"]


class EventLoop(StreamsMixin, DatagramMixin, SocketsMixin, SignalsMixin, SubprocessMixin):
    """Treadle's event loop. Use it wherever asyncio takes a loop:
    `asyncio.Runner(loop_factory=treadle.EventLoop)`, `treadle.run(main())`."""
