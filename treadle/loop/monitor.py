"""What a running loop is doing: loop lag, slow callbacks and the live task tree.

Public API for any program on Treadle's loop (and, where noted, on any
asyncio loop); `treadle run --metrics`, `treadle stats` and `treadle ps`
read a server's workers through it.

- `LoopMonitor(loop)`: once started, measures **loop lag** (how late a timer
  due every `interval` seconds actually runs: the time every callback
  queued behind a blocking one waits) into a histogram, keeps the largest of
  the last `window` seconds, and counts **slow callbacks**: callbacks that
  ran `slow` seconds (0.1 by default, asyncio's `slow_callback_duration`) or
  longer. Slow callbacks are counted by a watchdog thread, which samples the
  callback the loop is running (Treadle's loop publishes it while watched:
  one attribute store per callback, nothing at all when not watched); on
  another asyncio loop they are counted in debug mode only, where it
  publishes its current handle too. Reading the figures is safe from any
  thread, so they answer even while the loop itself is blocked.
- `task_tree(loop)`: every task of the loop, what it awaits, its coroutine
  stack (`function file:line`, innermost last), and which tasks await it,
  walked from the tasks' coroutines through `cr_await` (what Python 3.14's
  `python -m asyncio ps` shows, on 3.11-3.13, without ptrace). Works on any
  asyncio loop; call it on the loop's thread.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
import types
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["LAG_BUCKETS", "LoopMonitor", "TaskInfo", "task_tree"]

#: Upper bounds (seconds) of the loop-lag histogram's buckets (+Inf beyond).
LAG_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopMonitor:
    """Loop lag and slow callbacks of one loop (see the module docstring).

    `interval`: seconds between lag probes. `slow`: the duration from which a
    callback counts as slow. `window`: how far back `max_lag()` looks.
    Start it on the loop's thread (`start()`), read it from anywhere.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        interval: float = 0.25,
        slow: float = 0.1,
        window: float = 10.0,
        buckets: Sequence[float] = LAG_BUCKETS,
    ) -> None:
        if interval <= 0 or slow <= 0 or window <= 0:
            raise ValueError("interval, slow and window must be positive seconds")
        self.loop = loop
        self.interval = interval
        self.slow = slow
        self.window = window
        self.buckets = tuple(buckets)
        #: Probes per bucket (the last one is +Inf), their lag's sum and count.
        self.lag_counts = [0] * (len(self.buckets) + 1)
        self.lag_sum = 0.0
        self.lag_count = 0
        #: Callbacks that ran `slow` seconds or longer.
        self.slow_callbacks = 0
        self._recent: deque[tuple[float, float]] = deque()  # (when, lag)
        self._lock = threading.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start probing the lag and watching callbacks (on the loop's thread)."""
        if self._timer is not None:
            raise RuntimeError("the LoopMonitor is already started")
        loop = self.loop
        self._due = loop.time() + self.interval
        self._timer = loop.call_at(self._due, self._probe)
        if hasattr(loop, "_watched"):
            loop._watched = True
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._watch, name="treadle-loop-monitor", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop probing and watching (on the loop's thread)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if hasattr(self.loop, "_watched"):
            self.loop._watched = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # -- the lag -------------------------------------------------------------------------

    def _probe(self) -> None:
        loop = self.loop
        now = loop.time()
        lag = max(0.0, now - self._due)
        self.record_lag(lag, time.monotonic())
        self._due = now + self.interval
        self._timer = loop.call_at(self._due, self._probe)

    def record_lag(self, lag: float, when: float) -> None:
        """Count one lag measurement taken at `when` (monotonic seconds)."""
        with self._lock:
            self.lag_counts[bisect.bisect_left(self.buckets, lag)] += 1
            self.lag_sum += lag
            self.lag_count += 1
            recent = self._recent
            recent.append((when, lag))
            while recent and recent[0][0] < when - self.window:
                recent.popleft()

    def max_lag(self) -> float:
        """The largest lag measured in the last `window` seconds (0.0 if none)."""
        with self._lock:
            horizon = time.monotonic() - self.window
            return max((lag for when, lag in self._recent if when >= horizon), default=0.0)

    # -- slow callbacks --------------------------------------------------------------------

    def _watch(self) -> None:
        loop = self.loop
        step = min(self.slow / 4, 0.05)
        seen: Any = None
        iteration = -1
        since = 0.0
        counted = False
        while not self._stop.wait(step):
            handle = getattr(loop, "_current_handle", None)
            current = getattr(loop, "_iterations", 0)
            now = time.monotonic()
            if handle is None:
                seen = None
                continue
            if handle is not seen or current != iteration:
                seen, iteration, since, counted = handle, current, now, False
            elif not counted and now - since >= self.slow:
                counted = True
                with self._lock:
                    self.slow_callbacks += 1

    def snapshot(self) -> dict[str, Any]:
        """The figures, for metrics and `treadle stats` (any thread)."""
        with self._lock:
            return {
                "lag_buckets": list(self.buckets),
                "lag_counts": list(self.lag_counts),
                "lag_sum": self.lag_sum,
                "lag_count": self.lag_count,
                "slow_callbacks": self.slow_callbacks,
            }


# -- the task tree -----------------------------------------------------------------------------


@dataclass
class TaskInfo:
    """One task of `task_tree()`: `id` (stable while it lives), `name`,
    `state` ("pending", "done", "cancelled"), `awaiting` (what its innermost
    coroutine waits on, described), `stack` (its coroutines as `function
    file:line`, outermost first), `awaited_by` (ids of the tasks waiting on it)."""

    id: int
    name: str
    state: str
    awaiting: str
    stack: list[str] = field(default_factory=list)
    awaited_by: list[int] = field(default_factory=list)


def _frames(coro: Any) -> tuple[list[str], Any]:
    """The `function file:line` of each coroutine in `coro`'s await chain,
    and the object at its end (a future, or None)."""
    stack: list[str] = []
    seen = 0
    while coro is not None and seen < 100:
        seen += 1
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        if code is not None:
            line = frame.f_lineno if frame is not None else code.co_firstlineno
            stack.append(f"{code.co_qualname} {code.co_filename}:{line}")
        nxt = getattr(coro, "cr_await", None)
        if nxt is None:
            nxt = getattr(coro, "gi_yieldfrom", None)
        if nxt is None or isinstance(nxt, asyncio.Future):
            return stack, nxt
        if not isinstance(nxt, (types.CoroutineType, types.GeneratorType)):
            # A future's own __await__ iterator (FutureIter): the task's
            # waiter, which the caller looks up, is the future behind it.
            return stack, None
        coro = nxt
    return stack, None


def _describe(awaited: Any, ids: dict[int, int]) -> str:
    if awaited is None:
        return "-"
    if isinstance(awaited, asyncio.Task):
        return f"task {awaited.get_name()} (#{ids.get(id(awaited), '?')})"
    if isinstance(awaited, asyncio.Future):
        children = getattr(awaited, "_children", None)
        if children:
            return f"gather of {len(children)}"
        return "a future"
    return type(awaited).__name__


def task_tree(loop: asyncio.AbstractEventLoop | None = None) -> list[TaskInfo]:
    """Every task of `loop` (the running one by default), with what it waits
    on and who waits on it (see the module docstring)."""
    tasks = sorted(asyncio.all_tasks(loop), key=id)
    ids = {id(task): number for number, task in enumerate(tasks, 1)}
    infos: dict[int, TaskInfo] = {}
    waits_on: dict[int, list[asyncio.Future[Any]]] = {}
    for task in tasks:
        number = ids[id(task)]
        stack, awaited = _frames(task.get_coro())
        if awaited is None:
            awaited = getattr(task, "_fut_waiter", None)
        state = "cancelled" if task.cancelled() else "done" if task.done() else "pending"
        infos[number] = TaskInfo(number, task.get_name(), state, _describe(awaited, ids), stack)
        targets: list[asyncio.Future[Any]] = []
        if isinstance(awaited, asyncio.Task):
            targets.append(awaited)
        elif isinstance(awaited, asyncio.Future):
            targets.extend(getattr(awaited, "_children", None) or ())
        waits_on[number] = targets
    for number, targets in waits_on.items():
        for target in targets:
            child = ids.get(id(target))
            if child is not None:
                infos[child].awaited_by.append(number)
    return [infos[number] for number in sorted(infos)]
