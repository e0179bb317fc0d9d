"""Callback handles: what `call_soon`, `call_later` and `add_reader` return.

They subclass asyncio's `Handle` and `TimerHandle` only so that
`isinstance(h, asyncio.Handle)` holds for code that checks; every method the loop
relies on is defined here. The loop's hot path never calls a method on a handle:
it reads `_cancelled`, `_context`, `_callback` and `_args` directly (slots), so a
handle costs one small allocation and nothing more.

A timer lives in the loop's heap as a `(when, seq, handle)` tuple. Comparing
tuples happens in C, where asyncio compares handles with a Python `__lt__`; `seq`
keeps timers due at the same instant in the order they were scheduled.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import reprlib
import sys
import traceback
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import BaseEventLoop

__all__ = ["Handle", "TimerHandle", "extract_stack", "format_callback"]

#: How many frames a handle made in debug mode remembers of where it was made.
DEBUG_STACK_DEPTH = 10

_LOOP_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def extract_stack() -> traceback.StackSummary:
    """Return the stack (without locals) up to the first frame outside the loop
    package: where user code asked for the handle, for debug-mode reprs."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_LOOP_DIR):
        frame = frame.f_back
    stack = traceback.StackSummary.extract(
        traceback.walk_stack(frame), limit=DEBUG_STACK_DEPTH, lookup_lines=False
    )
    stack.reverse()
    return stack


def format_callback(callback: Any, args: tuple[Any, ...] | None) -> str:
    """Describe a callback and its arguments the way asyncio's reprs do, with
    where the function is defined ("at file:line") when it is a plain
    function or a partial of one: what a slow-callback warning or an error
    report needs to name the code."""
    name = getattr(callback, "__qualname__", None) or getattr(callback, "__name__", None)
    if name is None:
        func = getattr(callback, "func", None)  # functools.partial
        text = _format_name(func) if func is not None else repr(callback)
    else:
        text = name
    if args is not None:
        text += "(" + ", ".join(reprlib.repr(a) for a in args) + ")"
    source = _function_source(callback)
    if source is not None:
        text += f" at {source[0]}:{source[1]}"
    return text


def _format_name(callback: Any) -> str:
    name = getattr(callback, "__qualname__", None) or getattr(callback, "__name__", None)
    return str(name) if name is not None else repr(callback)


def _function_source(callback: Any) -> tuple[str, int] | None:
    """(file, first line) of a Python function, seen through decorators that
    set `__wrapped__` and through `functools.partial`; None for anything else
    (methods and builtins, as in asyncio)."""
    for _ in range(100):  # a bound on __wrapped__ chains, which may loop
        if isinstance(callback, functools.partial):
            callback = callback.func
        elif isinstance(callback, types.FunctionType):
            wrapped = getattr(callback, "__wrapped__", None)
            if wrapped is None:
                code = callback.__code__
                return code.co_filename, code.co_firstlineno
            callback = wrapped
        else:
            return None
    return None


class Handle(asyncio.Handle):
    """A callback scheduled on the loop, with its arguments and its context."""

    __slots__ = ()

    # The slots asyncio.Handle declares, typed as this loop uses them.
    _callback: Callable[..., object]
    _args: tuple[Any, ...]
    _loop: BaseEventLoop
    _repr: str | None
    _source_traceback: traceback.StackSummary | None

    def __init__(
        self,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: BaseEventLoop,
        context: contextvars.Context | None = None,
    ) -> None:
        self._callback = callback
        self._args = args
        self._loop = loop
        self._cancelled = False
        self._repr = None
        self._context = contextvars.copy_context() if context is None else context
        self._source_traceback = extract_stack() if loop._debug else None

    def cancel(self) -> None:
        """Make sure the callback never runs. Cancelling twice is harmless."""
        if not self._cancelled:
            self._cancelled = True
            if self._loop._debug:
                # Keep the description: the callback is dropped below.
                self._repr = repr(self)
            # Drop references now, so a cancelled handle keeps nothing alive.
            self._callback = None  # type: ignore[assignment]
            self._args = None  # type: ignore[assignment]

    def cancelled(self) -> bool:
        return self._cancelled

    def get_context(self) -> contextvars.Context:
        return self._context

    def _run(self) -> None:
        """Run the callback in its context, routing an exception to the loop.

        The loop's fast path inlines this; it stays for the debug path and for
        callers that hold a handle (signal handlers).
        """
        try:
            self._context.run(self._callback, *self._args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop._report_callback_error(self, exc)
        # A traceback made during the callback can keep this frame alive (its
        # frames link back to their callers): let it not keep the handle, and
        # through it the task, alive too. A task that failed and was dropped
        # is then reported at once, as on the stdlib loop, not at the next GC.
        self = None  # type: ignore[assignment]

    def _describe(self) -> list[str]:
        info = [type(self).__name__]
        if self._cancelled:
            info.append("cancelled")
        if self._callback is not None:
            info.append(format_callback(self._callback, self._args))
        if self._source_traceback:
            frame = self._source_traceback[-1]
            info.append(f"created at {frame.filename}:{frame.lineno}")
        return info

    def __repr__(self) -> str:
        if self._repr is not None:
            return self._repr
        return "<{}>".format(" ".join(self._describe()))


class TimerHandle(Handle, asyncio.TimerHandle):
    """A callback due at a point in time on the loop's clock."""

    __slots__ = ()

    _when: float
    _scheduled: bool

    def __init__(
        self,
        when: float,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: BaseEventLoop,
        context: contextvars.Context | None = None,
    ) -> None:
        Handle.__init__(self, callback, args, loop, context)
        self._when = when
        # True while the handle sits in the loop's heap.
        self._scheduled = False

    def when(self) -> float:
        """The absolute time, on the loop's clock, the callback is due."""
        return self._when

    def cancel(self) -> None:
        if not self._cancelled and self._scheduled:
            self._loop._timer_handle_cancelled(self)
        Handle.cancel(self)

    def _describe(self) -> list[str]:
        info = Handle._describe(self)
        info.insert(2 if self._cancelled else 1, f"when={self._when}")
        return info

    # Handles order by due time, as asyncio's do (the heap itself uses tuples).
    def __hash__(self) -> int:
        return hash(self._when)

    def __lt__(self, other: object) -> bool:
        if isinstance(other, TimerHandle):
            return self._when < other._when
        return NotImplemented

    def __le__(self, other: object) -> bool:
        if isinstance(other, TimerHandle):
            return self._when < other._when or self.__eq__(other)
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if isinstance(other, TimerHandle):
            return self._when > other._when
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        if isinstance(other, TimerHandle):
            return self._when > other._when or self.__eq__(other)
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TimerHandle):
            return (
                self._when == other._when
                and self._callback == other._callback
                and self._args == other._args
                and self._cancelled == other._cancelled
            )
        return NotImplemented
