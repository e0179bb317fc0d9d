"""Run CPython's own asyncio test suite against Treadle's loop, next to the stdlib loop.

    python tests/cpython/run.py                       # every module, both loops: the table
    python tests/cpython/run.py -m test_streams -m test_server
    python tests/cpython/run.py --loop treadle --check tests/cpython/expected-3.11.json
    python tests/cpython/run.py --record tests/cpython/expected-3.11.json
    python tests/cpython/run.py --loop treadle --not-on-treadle   # which tests, and why
    python tests/cpython/run.py --loop treadle --no-route   # before routing (see below)

The modules come from the installed interpreter (`test.test_asyncio`); every
module there is either in `MODULES` or in `LEFT_OUT` with the reason.

Where Treadle's loop goes. The tests make their loops in several ways, and
each gets Treadle's by the way it makes them:

- Test classes that make their loop in `create_event_loop()` (the event loop
  mixins of `test_events`, `test_sock_lowlevel` and `test_sendfile`) get it
  overridden to return `treadle.new_event_loop()`.
  Several concrete classes share one set of mixins, one per stdlib selector
  (Select/Poll/EPoll); for Treadle they would be the same test run three times,
  so one is kept (the EPoll one where it exists) -- in both columns, so the
  counts compare.
- Tests that make their own loop through a hook of theirs are routed
  (`_route_loops`): `new_test_loop()` without a time generator, the
  `new_loop()` of `test_server`, `test_buffered_proto`, `test_sslproto` and
  `test_runners` (whose loop sits behind the test's own policy and
  `asyncio.run`), and `test_pep492`'s mocked-selector loop. A few tests that
  route would break because they read the stdlib loop's private internals
  stay on their own loop, each with the reason (`STAY_ON_STDLIB`).
- Everything else gets loops from the policy (`asyncio.new_event_loop()`,
  `asyncio.run`, `IsolatedAsyncioTestCase`): `asyncio.DefaultEventLoopPolicy` is
  replaced by Treadle's policy, which survives the modules resetting the policy
  with `set_event_loop_policy(None)`.

What cannot run on Treadle's loop: asyncio's virtual-time `TestLoop`
(`new_test_loop(gen)` in `test_tasks`). It subclasses the stdlib's
`base_events.BaseEventLoop` and moves its clock by extending that class's
private run loop (`_run_once`, `_selector`, `_process_events`, `time()` read by
the timer code); Treadle's loop is a different class whose run loop is one
inlined function reading the monotonic clock, so there is nothing to extend.
Those tests run on the stdlib loop in both columns.

Counting only what ran on Treadle's loop. The child wraps `__init__` and
`run_forever` of both loop classes (Treadle's and `asyncio.BaseEventLoop`;
`run_until_complete` and `asyncio.run` go through `run_forever`) and records,
per test (setUp and cleanups included), which kinds of loop were made and run.
A test is on Treadle's loop if a Treadle loop ran during it, or if it made one
and made no stdlib loop. Treadle's column counts passes only for those; the
others are counted apart: passed on a stdlib loop only, or passed without any
loop (tests of `Handle`, the policy API, protocols...). Failures and skips are
counted whichever loop they met.

Each module runs in a child process that writes one JSON line per test. A test
that hangs is killed by faulthandler after `--timeout` seconds; the parent
records it as a timeout (a failure) and restarts the child after it.

`--check FILE` exits non-zero when a module passes fewer tests on Treadle's
loop than FILE records, when a module FILE records did not run, did not import
or produced no results, or when an installed test module is neither run nor
left out (CI runs this on every Python with a FILE); `--record FILE` writes
the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: The modules the harness runs, and why the others are left out.
MODULES = [
    "test_events",
    "test_streams",
    "test_server",
    "test_sock_lowlevel",
    "test_sendfile",
    "test_subprocess",
    "test_ssl",
    "test_sslproto",
    "test_buffered_proto",
    "test_tasks",
    "test_taskgroups",
    "test_timeouts",
    "test_queues",
    "test_locks",
    "test_futures",
    "test_futures2",
    "test_runners",
    "test_context",
    "test_pep492",
    "test_waitfor",
    "test_threads",
    "test_protocols",
    "test_transports",
    "test_eager_task_factory",  # 3.12+
    "test_staggered",  # 3.13+
]
LEFT_OUT = {
    "test_base_events": "tests asyncio.BaseEventLoop's private methods with mocks",
    "test_selector_events": "tests asyncio's selector transports' internals with mocks",
    "test_unix_events": "tests asyncio's Unix loop internals and child watchers with mocks",
    "test_proactor_events": "Windows only",
    "test_windows_events": "Windows only",
    "test_windows_utils": "Windows only",
}


# -- the child: runs one module on one loop ---------------------------------------------


def _install_treadle() -> None:
    import asyncio

    sys.path.insert(0, str(ROOT))
    import treadle

    asyncio.DefaultEventLoopPolicy = treadle.EventLoopPolicy  # type: ignore[misc]
    asyncio.events.DefaultEventLoopPolicy = treadle.EventLoopPolicy  # type: ignore[attr-defined]
    import asyncio.unix_events

    asyncio.unix_events.DefaultEventLoopPolicy = treadle.EventLoopPolicy  # type: ignore[misc]
    asyncio.set_event_loop_policy(treadle.EventLoopPolicy())


class _LoopWatch:
    """Which kinds of event loop the current test made or ran.

    A test counts as Treadle's only if a Treadle loop was made or run while it
    ran (setUp and cleanups included): many tests make their own stdlib loop,
    and their passes say nothing about Treadle. The hooks wrap `__init__` and
    `run_forever` of both loop bases (`run_until_complete` and `asyncio.run`
    go through `run_forever`), so both columns run the same code.
    """

    def __init__(self) -> None:
        self.made: set[str] = set()
        self.ran: set[str] = set()

    def reset(self) -> None:
        self.made.clear()
        self.ran.clear()

    def install(self, kind: str) -> None:
        import asyncio.base_events

        self._wrap(asyncio.base_events.BaseEventLoop, "stdlib")
        if kind == "treadle":
            from treadle.loop.core import BaseEventLoop

            self._wrap(BaseEventLoop, "treadle")

    def _wrap(self, cls: type, label: str) -> None:
        import functools

        made, ran = self.made, self.ran
        init = cls.__dict__["__init__"]
        run_forever = cls.__dict__["run_forever"]

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            made.add(label)
            init(self, *args, **kwargs)

        @functools.wraps(run_forever)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            ran.add(label)
            return run_forever(self, *args, **kwargs)

        cls.__init__ = __init__  # type: ignore[misc]
        cls.run_forever = run  # type: ignore[attr-defined]

    def record(self) -> dict[str, list[str]]:
        return {"made": sorted(self.made), "ran": sorted(self.ran)}


_WATCH = _LoopWatch()


def _bind_loops(module: Any, kind: str) -> None:
    """Keep one concrete class per set of mixins; on Treadle, make it use
    Treadle's loop."""
    classes = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, unittest.TestCase)
        and "create_event_loop" in dir(obj)
    ]
    groups: dict[tuple[type, ...], list[type]] = {}
    for cls in classes:
        groups.setdefault(cls.__bases__, []).append(cls)
    for members in groups.values():
        keep = next((c for c in members if "EPoll" in c.__name__), members[0])
        for cls in members:
            if cls is not keep:
                delattr(module, cls.__name__)
        if kind == "treadle":
            import treadle

            keep.create_event_loop = lambda self: treadle.new_event_loop()  # type: ignore[attr-defined]


#: Tests a route below would move onto Treadle's loop but that read the stdlib
#: loop's private internals, so they stay on the loop the test makes itself
#: ("module.test_method" -> why).
_LOGGER = (
    "patches `asyncio.base_events.logger`, the stdlib loop module's name for the "
    "`asyncio` logger; Treadle reports the same error to the same logger"
)
STAY_ON_STDLIB: dict[str, str] = {
    "test_futures.test_tb_logger_exception_unretrieved": _LOGGER,
    "test_futures.test_future_exception_never_retrieved": _LOGGER,
    "test_futures.test_future_exception_never_retrieved_debug": _LOGGER,
    "test_runners.test_asyncio_run_debug": (
        "patches the private `asyncio.coroutines._is_debug_mode`, which the stdlib "
        "loop calls when made; Treadle reads the same settings (-X dev, "
        "PYTHONASYNCIODEBUG) itself"
    ),
    "test_tasks.test_error_in_call_soon": _LOGGER,
    "test_tasks.test_log_destroyed_pending_task": (
        "steps the loop with the stdlib loop's private `_run_once`; Treadle's run "
        "loop is one inlined function"
    ),
    "test_tasks.test_issue46672": (
        "patches `asyncio.base_events.BaseEventLoop.call_exception_handler`, a "
        "method of the stdlib loop class"
    ),
}


def _stays(test: unittest.TestCase) -> bool:
    module = type(test).__module__.rpartition(".")[2]
    return f"{module}.{test._testMethodName}" in STAY_ON_STDLIB


def _route_loops(module: Any) -> None:
    """On Treadle, give Treadle loops to the tests that make their own loop.

    Each route replaces the test's own loop-making hook, never asyncio's
    classes, so asyncio's internals (and tests asserting what
    `asyncio.SelectorEventLoop` is) stay as they are:

    - `new_test_loop()` without a time generator: a `TestLoop` whose clock never
      moves and whose first timer would end the test with StopIteration, i.e. an
      ordinary loop for tests that only run callbacks and tasks. With a
      generator the test steers virtual time through hooks of the stdlib
      loop's private run loop (`_run_once`, `_selector`, `_process_events`)
      that Treadle's loop does not have; those stay on `TestLoop`.
    - `new_loop()` (`test_server`, `test_buffered_proto`, `test_sslproto`:
      `asyncio.SelectorEventLoop()`; `test_runners`: a stdlib `BaseEventLoop`
      with a mocked selector, behind the test's own policy and `asyncio.run`).
    - `test_pep492`'s `setUp`: the same mocked-selector `BaseEventLoop`.
    """
    from test.test_asyncio import utils as test_utils

    import treadle

    original_new_test_loop = test_utils.TestCase.new_test_loop

    def new_test_loop(self: Any, gen: Any = None) -> Any:
        if gen is not None or _stays(self):
            return original_new_test_loop(self, gen)
        loop = treadle.new_event_loop()
        self.set_event_loop(loop)
        return loop

    test_utils.TestCase.new_test_loop = new_test_loop

    def new_loop(self: Any) -> Any:
        return treadle.new_event_loop()

    def new_runners_loop(self: Any) -> Any:
        # The test's tearDown asserts the loop's async generators were shut
        # down; its own loop records that by replacing shutdown_asyncgens,
        # and so does this one, but it also runs Treadle's.
        loop = treadle.new_event_loop()
        loop.shutdown_ag_run = False  # type: ignore[attr-defined]
        shutdown_asyncgens = loop.shutdown_asyncgens

        async def recording_shutdown_asyncgens() -> None:
            loop.shutdown_ag_run = True  # type: ignore[attr-defined]
            await shutdown_asyncgens()

        loop.shutdown_asyncgens = recording_shutdown_asyncgens  # type: ignore[method-assign]
        return loop

    name = module.__name__.rpartition(".")[2]
    for cls in list(vars(module).values()):
        if not (isinstance(cls, type) and issubclass(cls, unittest.TestCase)):
            continue
        if "new_loop" in dir(cls) and "Proactor" not in cls.__name__:
            own = cls.new_loop  # type: ignore[attr-defined]
            route = new_runners_loop if name == "test_runners" else new_loop

            def routed(self: Any, own: Any = own, route: Any = route) -> Any:
                return own(self) if _stays(self) else route(self)

            cls.new_loop = routed  # type: ignore[attr-defined]
    if name == "test_pep492":
        base = module.BaseTest
        own_setup = base.setUp

        def setUp(self: Any) -> None:
            if _stays(self):
                own_setup(self)
                return
            test_utils.TestCase.setUp(self)
            self.loop = treadle.new_event_loop()
            self.set_event_loop(self.loop)

        base.setUp = setUp


def _flatten(suite: unittest.TestSuite) -> list[unittest.TestCase]:
    out: list[unittest.TestCase] = []
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


class _JsonResult(unittest.TestResult):
    def __init__(self, out: Any, timeout: float) -> None:
        super().__init__()
        self.out = out
        self.timeout = timeout
        self.status: dict[str, str] = {}

    def _write(self, test: unittest.TestCase, status: str, detail: str = "", **extra: Any) -> None:
        record = {"id": test.id(), "status": status, "detail": detail, **extra}
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    def startTest(self, test: unittest.TestCase) -> None:
        import faulthandler

        super().startTest(test)
        self._write(test, "started")
        self.status[test.id()] = "pass"
        _WATCH.reset()
        faulthandler.dump_traceback_later(self.timeout, exit=True)

    def stopTest(self, test: unittest.TestCase) -> None:
        import faulthandler

        faulthandler.cancel_dump_traceback_later()
        super().stopTest(test)
        self._write(test, self.status.get(test.id(), "pass"), "", loops=_WATCH.record())

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self.status[test.id()] = "fail"
        self._write(test, "detail", self._exc_info_to_string(err, test)[-2000:])

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        self.status[test.id()] = "fail"
        self._write(test, "detail", self._exc_info_to_string(err, test)[-2000:])

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None and not issubclass(err[0], test.skipException):
            self.status[test.id()] = "fail"
            self._write(test, "detail", self._exc_info_to_string(err, test)[-2000:])

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self.status[test.id()] = "skip"

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        # Not a pass: the test did not do what it checks.
        super().addExpectedFailure(test, err)
        self.status[test.id()] = "skip"

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self.status[test.id()] = "fail"


def child(module_name: str, kind: str, out_path: str, timeout: float, route: bool) -> None:
    import importlib
    import traceback

    if kind == "treadle":
        _install_treadle()
    _WATCH.install(kind)
    done: set[str] = set()
    if os.path.exists(out_path):
        with open(out_path) as f:
            for line in f:
                record = json.loads(line)
                if record["status"] in ("pass", "fail", "skip", "timeout"):
                    done.add(record["id"])
    with open(out_path, "a") as out:
        try:
            module = importlib.import_module(f"test.test_asyncio.{module_name}")
        except BaseException:
            # Skipping a whole module on import (SkipTest) is an error here too:
            # a module the harness runs must run.
            record = {"id": module_name, "status": "import-error", "detail": traceback.format_exc()}
            out.write(json.dumps(record) + "\n")
            return
        _bind_loops(module, kind)
        if kind == "treadle" and route:
            _route_loops(module)
        suite = unittest.defaultTestLoader.loadTestsFromModule(module)
        tests = [t for t in _flatten(suite) if t.id() not in done]
        result = _JsonResult(out, timeout)
        unittest.TestSuite(tests).run(result)
        # Errors in setUpClass/setUpModule are reported on a pseudo-test.
        for test, err in result.errors:
            if not isinstance(test, unittest.TestCase):
                out.write(json.dumps({"id": str(test), "status": "fail", "detail": err}) + "\n")
        out.write(json.dumps({"id": module_name, "status": "done"}) + "\n")


# -- the parent: runs the children, prints the table --------------------------------------

_FINISHED = ("pass", "fail", "skip", "timeout")


def on_treadle(test: dict[str, Any]) -> bool:
    """Whether a test ran on Treadle's loop (see the module docstring)."""
    made, ran = test.get("made", []), test.get("ran", [])
    return "treadle" in ran or ("treadle" in made and "stdlib" not in made)


def run_module(module: str, kind: str, timeout: float, route: bool = True) -> dict[str, Any]:
    """Run one module on one loop; return counts, failing test ids and any error
    that kept the module from running (`error`, else None)."""
    fd, out_path = tempfile.mkstemp(prefix=f"cpython-{module}-{kind}-", suffix=".jsonl")
    os.close(fd)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTHONASYNCIODEBUG", None)
    command = [sys.executable, __file__, "--child", module, kind, out_path]
    command += ["--timeout", str(timeout)] + ([] if route else ["--no-route"])
    error: str | None = None
    try:
        for _ in range(200):  # restarts after hung tests
            proc = subprocess.run(
                command,
                env=env,
                cwd=tempfile.gettempdir(),
                capture_output=True,
                text=True,
                check=False,
            )
            records = _read(out_path)
            if any(r["status"] in ("done", "import-error") for r in records):
                break
            started = [r["id"] for r in records if r["status"] == "started"]
            finished = {r["id"] for r in records if r["status"] in _FINISHED}
            hung = [t for t in started if t not in finished]
            if not hung:
                error = (
                    f"the child exited with status {proc.returncode} before finishing:\n"
                    f"{proc.stderr[-3000:]}"
                )
                break
            with open(out_path, "a") as f:
                for t in hung:
                    f.write(
                        json.dumps({"id": t, "status": "timeout", "detail": proc.stderr[-1500:]})
                        + "\n"
                    )
        else:
            error = "hung 200 times; gave up"
        records = _read(out_path)
    finally:
        os.unlink(out_path)
    tests: dict[str, dict[str, Any]] = {}
    details: dict[str, str] = {}
    for r in records:
        if r["status"] == "detail":
            details[r["id"]] = r["detail"]
        elif r["status"] == "import-error":
            # The exception first: --check shows an error's first line.
            error = f"did not import: {r['detail'].strip().splitlines()[-1]}\n{r['detail']}"
        elif r["status"] in _FINISHED:
            tests[r["id"]] = {"status": r["status"], **r.get("loops", {})}
    if error is None and not tests:
        error = "produced no results"
    counts = {"pass": 0, "fail": 0, "skip": 0}
    if kind == "treadle":
        counts.update(stdlib_only=0, no_loop=0)
    for test in tests.values():
        status = "fail" if test["status"] == "timeout" else test["status"]
        if status == "pass" and kind == "treadle" and not on_treadle(test):
            status = "stdlib_only" if test.get("made") or test.get("ran") else "no_loop"
        counts[status] += 1
    failing = sorted(t for t, v in tests.items() if v["status"] in ("fail", "timeout"))
    return {
        "error": error,
        "counts": counts,
        "failing": failing,
        "timeouts": sorted(t for t, v in tests.items() if v["status"] == "timeout"),
        "details": {t: details.get(t, "") for t in failing},
        "tests": dict(sorted(tests.items())),
    }


def _read(path: str) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def installed_modules() -> list[str]:
    """The test modules of this interpreter's `test.test_asyncio`."""
    import pkgutil

    import test.test_asyncio

    return sorted(
        m.name
        for m in pkgutil.iter_modules(test.test_asyncio.__path__)
        if m.name.startswith("test_")
    )


def _cell(counts: dict[str, int], *keys: str) -> str:
    return " / ".join(f"{counts[k]:>3}" for k in keys)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-m", "--module", action="append", help="a test_asyncio module")
    parser.add_argument("--loop", choices=["both", "treadle", "asyncio"], default="both")
    parser.add_argument("--timeout", type=float, default=60.0, help="per test, seconds")
    parser.add_argument("--check", type=Path, help="fail below the counts in this file")
    parser.add_argument("--record", type=Path, help="write Treadle's counts to this file")
    parser.add_argument(
        "--failures",
        action="store_true",
        help="list tests that pass on asyncio but fail on Treadle",
    )
    parser.add_argument(
        "--not-on-treadle",
        action="store_true",
        help="list, per test class, the passes that never ran on Treadle's loop",
    )
    parser.add_argument(
        "--no-route",
        action="store_true",
        help="leave tests on the loops they make themselves (shows what routing adds)",
    )
    parser.add_argument("--json", type=Path, help="write every result to this file")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2], args.timeout, not args.no_route)
        return 0

    installed = installed_modules()
    unaccounted = sorted(set(installed) - set(MODULES) - set(LEFT_OUT))
    if args.module:
        for m in args.module:
            if m not in installed:
                print(f"{m}: not in this interpreter's test.test_asyncio")
        modules = [m for m in args.module if m in installed]
    else:
        modules = [m for m in MODULES if m in installed]
    kinds = ["asyncio", "treadle"] if args.loop == "both" else [args.loop]
    print(
        f"CPython {sys.version.split()[0]}: test.test_asyncio on "
        f"{' and '.join(kinds)}{' (not routed)' if args.no_route else ''}",
        flush=True,
    )
    header = f"{'':<26}"
    header2 = f"{'module':<26}"
    if "asyncio" in kinds:
        header += f"{'stdlib loop':>20}"
        header2 += f"{'pass / fail / skip':>20}"
    if "treadle" in kinds:
        header += f"{'on Treadle loop':>20}{'passed off it':>20}"
        header2 += f"{'pass / fail / skip':>20}{'stdlib / no loop':>20}"
    print(header + "\n" + header2, flush=True)
    results: dict[str, dict[str, Any]] = {}
    totals: dict[str, dict[str, int]] = {}
    started = time.monotonic()
    for module in modules:
        results[module] = {}
        row = f"{module:<26}"
        errors = []
        for kind in kinds:
            got = results[module][kind] = run_module(module, kind, args.timeout, not args.no_route)
            total = totals.setdefault(kind, dict.fromkeys(got["counts"], 0))
            for key, n in got["counts"].items():
                total[key] += n
            if got["error"]:
                errors.append(f"{kind}: {got['error']}")
        for kind in kinds:
            c = results[module][kind]["counts"]
            row += f"{_cell(c, 'pass', 'fail', 'skip'):>20}"
            if kind == "treadle":
                row += f"{_cell(c, 'stdlib_only', 'no_loop'):>20}"
        print(row, flush=True)
        for e in errors:
            print(f"  ERROR {module} on {e}", flush=True)
    row = f"{'total':<26}"
    for kind in kinds:
        c = totals.get(kind, {"pass": 0, "fail": 0, "skip": 0, "stdlib_only": 0, "no_loop": 0})
        row += f"{_cell(c, 'pass', 'fail', 'skip'):>20}"
        if kind == "treadle":
            row += f"{_cell(c, 'stdlib_only', 'no_loop'):>20}"
    print(row)
    print(f"({time.monotonic() - started:.0f} s)")
    left_out = sorted(m for m in installed if m in LEFT_OUT)
    print("Left out: " + ", ".join(f"{m} ({LEFT_OUT[m]})" for m in left_out))
    if unaccounted:
        print("Installed but neither run nor left out: " + ", ".join(unaccounted))

    if args.failures and "asyncio" in kinds and "treadle" in kinds:
        print("\nPass on the stdlib loop, fail on Treadle:")
        for module in modules:
            ok_on_stdlib = set(results[module]["asyncio"]["failing"])
            for test in results[module]["treadle"]["failing"]:
                if test not in ok_on_stdlib:
                    print(f"  {test}")
    if args.not_on_treadle and "treadle" in kinds:
        _print_not_on_treadle(modules, results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    status = 0
    if args.record:
        broken = [m for m in modules if results[m].get("treadle", {}).get("error")]
        if broken or "treadle" not in kinds:
            print(f"Not recorded: {', '.join(broken) or 'Treadle did not run'}")
            status = 1
        else:
            counts = {m: results[m]["treadle"]["counts"] for m in modules}
            args.record.write_text(json.dumps(counts, indent=1, sort_keys=True) + "\n")
    if args.check:
        expected = json.loads(args.check.read_text())
        problems = []
        for module, want in sorted(expected.items()):
            ran: dict[str, Any] | None = results.get(module, {}).get("treadle")
            if ran is None:
                where = "" if module in installed else " (not in this interpreter)"
                problems.append(f"{module}: did not run{where}")
            elif ran["error"]:
                problems.append(f"{module}: {ran['error'].splitlines()[0]}")
            elif ran["counts"]["pass"] < want["pass"]:
                problems.append(
                    f"{module}: {ran['counts']['pass']} passed on Treadle's loop, "
                    f"recorded {want['pass']}"
                )
                for test in ran["failing"]:
                    print(f"  failing: {test}")
        if unaccounted:
            problems.append("neither run nor left out: " + ", ".join(unaccounted))
        if problems:
            print("Check failed:\n  " + "\n  ".join(problems))
            status = 1
        else:
            print("At or above the recorded counts.")
    return status


def _print_not_on_treadle(modules: list[str], results: dict[str, dict[str, Any]]) -> None:
    print("\nPassed without running on Treadle's loop (per class: stdlib loop / no loop):")
    for module in modules:
        per_class: dict[str, list[int]] = {}
        for test_id, test in results[module]["treadle"]["tests"].items():
            if test["status"] != "pass" or on_treadle(test):
                continue
            cls = test_id.rsplit(".", 2)[-2] if test_id.count(".") >= 2 else test_id
            n = per_class.setdefault(cls, [0, 0])
            n[0 if test.get("made") or test.get("ran") else 1] += 1
        for cls, (stdlib, none) in sorted(per_class.items()):
            print(f"  {module}.{cls}: {stdlib} / {none}")
    print("Left on the loop the test makes, though routing would reach them:")
    for test, why in sorted(STAY_ON_STDLIB.items()):
        print(f"  {test}: {why}")


if __name__ == "__main__":
    sys.exit(main())
