"""Unix signal handlers that run as ordinary loop callbacks.

Python's C-level signal handler writes the signal number to the fd given to
`signal.set_wakeup_fd`; that is the loop's own wake-up socket, so a signal both
wakes a loop blocked in the poller and tells it which handler to schedule. The
Python-level handler installed with `signal.signal` does nothing: all the work
happens on the loop, between callbacks, never at an arbitrary bytecode.

Only the main thread may install signal handlers (a CPython rule); elsewhere the
methods raise `RuntimeError` saying so.
"""

from __future__ import annotations

import errno
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from typing import TypeVarTuple, Unpack

from .core import BaseEventLoop
from .handles import Handle

__all__ = ["SignalsMixin"]

_Ts = TypeVarTuple("_Ts")


def _ignore_signal(signum: int, frame: object) -> None:
    """The Python-level handler: the wake-up fd already carries the news."""


class SignalsMixin(BaseEventLoop):
    """`add_signal_handler` and `remove_signal_handler`."""

    def add_signal_handler(
        self, sig: int, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts
    ) -> None:
        """Run `callback(*args)` on the loop whenever signal `sig` arrives."""
        if not isinstance(sig, int):
            raise TypeError(f"sig must be an int, not {sig!r}")
        self._check_callback(callback, "add_signal_handler")
        self._check_closed()
        if sig not in signal.valid_signals():
            raise ValueError(f"sig {sig} out of range(1, {signal.NSIG})")
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                "add_signal_handler() can only be called from the main thread "
                "(Python delivers signals to the main thread only)"
            )
        try:
            # Raises ValueError if not in the main thread of the main interpreter.
            signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc)) from exc

        handle = Handle(callback, args, self, None)
        previous = self._signal_handlers.get(sig)
        self._signal_handlers[sig] = handle
        try:
            signal.signal(sig, _ignore_signal)
            # Let a signal interrupt nothing but the poller's wait: syscalls in
            # progress are restarted instead of failing with EINTR.
            signal.siginterrupt(sig, False)
        except OSError as exc:
            if previous is None:
                del self._signal_handlers[sig]
            else:
                self._signal_handlers[sig] = previous
            if not self._signal_handlers:
                self._release_wakeup_fd()
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught") from exc
            raise
        if previous is not None:
            previous.cancel()

    def remove_signal_handler(self, sig: int) -> bool:
        """Restore the default disposition of `sig`; True if a handler was removed."""
        if not isinstance(sig, int):
            raise TypeError(f"sig must be an int, not {sig!r}")
        if sig not in signal.valid_signals():
            raise ValueError(f"sig {sig} out of range(1, {signal.NSIG})")
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("remove_signal_handler() can only be called from the main thread")
        handle = self._signal_handlers.pop(sig, None)
        if handle is None:
            return False
        handle.cancel()
        default = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        try:
            signal.signal(sig, default)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught") from exc
            raise
        if not self._signal_handlers:
            self._release_wakeup_fd()
        return True

    def _release_wakeup_fd(self) -> None:
        try:
            # Only undo what we did: another loop may own the wake-up fd by now.
            previous = signal.set_wakeup_fd(-1)
            if previous not in (-1, self._wake_w.fileno()):
                signal.set_wakeup_fd(previous, warn_on_full_buffer=False)
        except (ValueError, OSError) as exc:
            warnings.warn(f"set_wakeup_fd(-1) failed: {exc}", RuntimeWarning, stacklevel=3)

    def _close_signal_handlers(self) -> None:
        if not self._signal_handlers:
            return
        if sys.is_finalizing():
            warnings.warn(
                f"Closing the loop {self!r} on interpreter shutdown stage, "
                "skipping signal handlers removal",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )
            self._signal_handlers.clear()
            return
        for sig in list(self._signal_handlers):
            self.remove_signal_handler(sig)
