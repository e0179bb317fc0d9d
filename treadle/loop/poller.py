"""Readiness pollers: epoll on Linux, kqueue on BSD and macOS, poll or select elsewhere.

The loop talks to the OS through one small interface instead of the `selectors`
module: `selectors` wraps every event in a `SelectorKey` namedtuple and keeps a
mapping the loop already keeps itself (fd -> reader and writer handles). Here a
poller only registers interest and returns `(fd, bits)` pairs; the loop tests the
bits against `READY_READ` and `READY_WRITE`, which each poller defines so that an
error or hang-up wakes both the reader and the writer (they learn what happened
from their own syscall).

Interest is a mask of `READ` (1) and `WRITE` (2), the same for every poller.
"""

from __future__ import annotations

import errno
import math
import select
from typing import Any, Protocol

__all__ = ["READ", "WRITE", "Poller", "available_pollers", "make_poller"]

READ = 1
WRITE = 2

# epoll and poll take a timeout in (rounded-up) milliseconds; very long sleeps are
# cut so the value stays in range. The loop just polls again.
MAX_TIMEOUT = 24 * 3600.0


class Poller(Protocol):
    """What the loop needs from a readiness API."""

    name: str
    READY_READ: int
    READY_WRITE: int

    def register(self, fd: int, interest: int) -> None: ...
    def modify(self, fd: int, old: int, new: int) -> None: ...
    def unregister(self, fd: int, old: int) -> None: ...
    def poll(self, timeout: float | None) -> list[tuple[int, int]]: ...
    def close(self) -> None: ...


def _clamp(timeout: float | None) -> float:
    if timeout is None:
        return -1.0
    if timeout > MAX_TIMEOUT or math.isnan(timeout):
        return MAX_TIMEOUT
    return max(timeout, 0.0)


class EpollPoller:
    """Linux epoll, level-triggered, as the loop expects."""

    name = "epoll"

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self.READY_READ = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP
        self.READY_WRITE = select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP

    @staticmethod
    def _mask(interest: int) -> int:
        return (select.EPOLLIN if interest & READ else 0) | (
            select.EPOLLOUT if interest & WRITE else 0
        )

    def register(self, fd: int, interest: int) -> None:
        try:
            self._epoll.register(fd, self._mask(interest))
        except FileExistsError:
            # The fd was closed and reused behind our back while still in our
            # table: epoll dropped nothing, so update it instead.
            self._epoll.modify(fd, self._mask(interest))

    def modify(self, fd: int, old: int, new: int) -> None:
        try:
            self._epoll.modify(fd, self._mask(new))
        except FileNotFoundError:
            # The fd was closed (epoll forgot it) and a new file got its number.
            self._epoll.register(fd, self._mask(new))

    def unregister(self, fd: int, old: int) -> None:
        try:
            self._epoll.unregister(fd)
        except OSError as exc:
            # Already gone from epoll because the fd was closed: nothing to undo.
            if exc.errno not in (errno.ENOENT, errno.EBADF):
                raise

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        return self._epoll.poll(_clamp(timeout))

    def close(self) -> None:
        self._epoll.close()


class PollPoller:
    """POSIX poll(2): no kernel object, one syscall per wait."""

    name = "poll"

    def __init__(self) -> None:
        self._poll = select.poll()
        self.READY_READ = select.POLLIN | select.POLLERR | select.POLLHUP | select.POLLNVAL
        self.READY_WRITE = select.POLLOUT | select.POLLERR | select.POLLHUP | select.POLLNVAL

    @staticmethod
    def _mask(interest: int) -> int:
        return (select.POLLIN if interest & READ else 0) | (
            select.POLLOUT if interest & WRITE else 0
        )

    def register(self, fd: int, interest: int) -> None:
        self._poll.register(fd, self._mask(interest))

    def modify(self, fd: int, old: int, new: int) -> None:
        self._poll.register(fd, self._mask(new))

    def unregister(self, fd: int, old: int) -> None:
        try:
            self._poll.unregister(fd)
        except KeyError:
            pass

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        t = _clamp(timeout)
        # poll() takes milliseconds; round up so a timer is never woken early.
        return self._poll.poll(None if t < 0 else math.ceil(t * 1000))

    def close(self) -> None:
        pass


class SelectPoller:
    """select(2), the last resort: limited to FD_SETSIZE descriptors."""

    name = "select"
    READY_READ = READ
    READY_WRITE = WRITE

    def __init__(self) -> None:
        self._readers: set[int] = set()
        self._writers: set[int] = set()

    def register(self, fd: int, interest: int) -> None:
        self.modify(fd, 0, interest)

    def modify(self, fd: int, old: int, new: int) -> None:
        if new & READ:
            self._readers.add(fd)
        else:
            self._readers.discard(fd)
        if new & WRITE:
            self._writers.add(fd)
        else:
            self._writers.discard(fd)

    def unregister(self, fd: int, old: int) -> None:
        self._readers.discard(fd)
        self._writers.discard(fd)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        t = _clamp(timeout)
        r, w, x = select.select(
            self._readers, self._writers, self._readers | self._writers, None if t < 0 else t
        )
        bits: dict[int, int] = {}
        for fd in r:
            bits[fd] = READ
        for fd in w:
            bits[fd] = bits.get(fd, 0) | WRITE
        for fd in x:
            bits[fd] = READ | WRITE
        return list(bits.items())

    def close(self) -> None:
        self._readers.clear()
        self._writers.clear()


# kqueue exists only on BSD and macOS; typed loosely so the module checks everywhere.
_select: Any = select


class KqueuePoller:
    """BSD/macOS kqueue: one filter per direction, so modify adds or deletes filters."""

    name = "kqueue"
    READY_READ = READ
    READY_WRITE = WRITE

    def __init__(self) -> None:
        self._kq = _select.kqueue()
        self._count = 0

    def _change(self, fd: int, old: int, new: int) -> None:
        changes = []
        for bit, flt in ((READ, _select.KQ_FILTER_READ), (WRITE, _select.KQ_FILTER_WRITE)):
            if new & bit and not old & bit:
                changes.append(_select.kevent(fd, flt, _select.KQ_EV_ADD))
            elif old & bit and not new & bit:
                changes.append(_select.kevent(fd, flt, _select.KQ_EV_DELETE))
        for kev in changes:
            try:
                self._kq.control([kev], 0, 0)
            except OSError:
                # Deleting a filter of a closed fd fails: it is already gone.
                if kev.flags != _select.KQ_EV_DELETE:
                    raise
        self._count += bin(new).count("1") - bin(old).count("1")

    def register(self, fd: int, interest: int) -> None:
        self._change(fd, 0, interest)

    def modify(self, fd: int, old: int, new: int) -> None:
        self._change(fd, old, new)

    def unregister(self, fd: int, old: int) -> None:
        self._change(fd, old, 0)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        t = _clamp(timeout)
        events = self._kq.control(None, max(self._count, 1), None if t < 0 else t)
        out = []
        for kev in events:
            if kev.filter == _select.KQ_FILTER_READ:
                out.append((int(kev.ident), READ))
            elif kev.filter == _select.KQ_FILTER_WRITE:
                out.append((int(kev.ident), WRITE))
        return out

    def close(self) -> None:
        self._kq.close()


_POLLERS: dict[str, type[EpollPoller | KqueuePoller | PollPoller | SelectPoller]] = {}
if hasattr(select, "epoll"):
    _POLLERS["epoll"] = EpollPoller
if hasattr(select, "kqueue"):
    _POLLERS["kqueue"] = KqueuePoller
if hasattr(select, "poll"):
    _POLLERS["poll"] = PollPoller
_POLLERS["select"] = SelectPoller


def available_pollers() -> list[str]:
    """Names of the pollers this platform offers, best first."""
    return list(_POLLERS)


def make_poller(name: str | None = None) -> Poller:
    """Make the named poller, or the best one this platform has."""
    if name is None:
        name = next(iter(_POLLERS))
    try:
        cls = _POLLERS[name]
    except KeyError:
        raise ValueError(
            f"unknown poller {name!r}; this platform has {', '.join(_POLLERS)}"
        ) from None
    return cls()
