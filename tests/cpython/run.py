"""Run CPython's own asyncio test suite against Treadle's loop, next to the stdlib loop.

    python tests/cpython/run.py                       # every module, both loops: the table
    python tests/cpython/run.py -m test_streams -m test_server
    python tests/cpython/run.py --loop treadle --check tests/cpython/expected-3.11.json
    python tests/cpython/run.py --record tests/cpython/expected-3.11.json

The modules come from the installed interpreter (`test.test_asyncio`). Two ways
put Treadle's loop under them, matching how each module makes its loops:

- Test classes that make their loop in `create_event_loop()` (the event loop
  mixins of `test_events`, `test_sock_lowlevel`, `test_sendfile`,
  `test_buffered_proto`, `test_sslproto`, `test_subprocess`...) get it
  overridden to return `treadle.new_event_loop()`. Several concrete classes
  share one set of mixins, one per stdlib selector (Select/Poll/EPoll); for
  Treadle they would be the same test run three times, so one is kept (the
  EPoll one where it exists) -- in both columns, so the counts compare.
- Everything else gets loops from the policy (`asyncio.new_event_loop()`,
  `asyncio.run`, `IsolatedAsyncioTestCase`): `asyncio.DefaultEventLoopPolicy` is
  replaced by Treadle's policy, which survives the modules resetting the policy
  with `set_event_loop_policy(None)`.

Each module runs in a child process that writes one JSON line per test. A test
that hangs is killed by faulthandler after `--timeout` seconds; the parent
records it as a timeout (a failure) and restarts the child after it.

`--check FILE` exits non-zero when a module passes fewer tests on Treadle than
FILE records (CI runs this on Python 3.11); `--record FILE` writes the counts.
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

    def _write(self, test: unittest.TestCase, status: str, detail: str = "") -> None:
        self.out.write(json.dumps({"id": test.id(), "status": status, "detail": detail}) + "\n")
        self.out.flush()

    def startTest(self, test: unittest.TestCase) -> None:
        import faulthandler

        super().startTest(test)
        self._write(test, "started")
        self.status[test.id()] = "pass"
        faulthandler.dump_traceback_later(self.timeout, exit=True)

    def stopTest(self, test: unittest.TestCase) -> None:
        import faulthandler

        faulthandler.cancel_dump_traceback_later()
        super().stopTest(test)
        self._write(test, self.status.get(test.id(), "pass"), "")

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

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self.status[test.id()] = "fail"


def child(module_name: str, kind: str, out_path: str, timeout: float) -> None:
    import importlib

    if kind == "treadle":
        _install_treadle()
    done: set[str] = set()
    if os.path.exists(out_path):
        with open(out_path) as f:
            for line in f:
                record = json.loads(line)
                if record["status"] in ("pass", "fail", "skip", "timeout"):
                    done.add(record["id"])
    module = importlib.import_module(f"test.test_asyncio.{module_name}")
    _bind_loops(module, kind)
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    tests = [t for t in _flatten(suite) if t.id() not in done]
    with open(out_path, "a") as out:
        result = _JsonResult(out, timeout)
        unittest.TestSuite(tests).run(result)
        # Errors in setUpClass/setUpModule are reported on a pseudo-test.
        for test, err in result.errors:
            if not isinstance(test, unittest.TestCase):
                out.write(json.dumps({"id": str(test), "status": "fail", "detail": err}) + "\n")


# -- the parent: runs the children, prints the table --------------------------------------


def run_module(module: str, kind: str, timeout: float) -> dict[str, Any]:
    """Run one module on one loop; return counts and failing test ids."""
    fd, out_path = tempfile.mkstemp(prefix=f"cpython-{module}-{kind}-", suffix=".jsonl")
    os.close(fd)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTHONASYNCIODEBUG", None)
    try:
        for _ in range(200):  # restarts after hung tests
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    module,
                    kind,
                    out_path,
                    "--timeout",
                    str(timeout),
                ],
                env=env,
                cwd=tempfile.gettempdir(),
                capture_output=True,
                text=True,
                check=False,
            )
            records = _read(out_path)
            started = [r["id"] for r in records if r["status"] == "started"]
            finished = {
                r["id"] for r in records if r["status"] in ("pass", "fail", "skip", "timeout")
            }
            hung = [t for t in started if t not in finished]
            if proc.returncode == 0 or not hung:
                if proc.returncode not in (0, 1) and not records:
                    raise RuntimeError(f"{module} on {kind} crashed:\n{proc.stderr[-3000:]}")
                break
            with open(out_path, "a") as f:
                for t in hung:
                    f.write(
                        json.dumps({"id": t, "status": "timeout", "detail": proc.stderr[-1500:]})
                        + "\n"
                    )
        records = _read(out_path)
    finally:
        os.unlink(out_path)
    final: dict[str, str] = {}
    details: dict[str, str] = {}
    for r in records:
        if r["status"] == "detail":
            details[r["id"]] = r["detail"]
        elif r["status"] != "started":
            final[r["id"]] = r["status"]
    counts = {"pass": 0, "fail": 0, "skip": 0}
    for status in final.values():
        counts["fail" if status == "timeout" else status] += 1
    failing = sorted(t for t, s in final.items() if s in ("fail", "timeout"))
    return {
        "counts": counts,
        "failing": failing,
        "timeouts": sorted(t for t, s in final.items() if s == "timeout"),
        "details": {t: details.get(t, "") for t in failing},
    }


def _read(path: str) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(f"test.test_asyncio.{module}") is not None


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
    parser.add_argument("--json", type=Path, help="write every result to this file")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2], args.timeout)
        return 0

    modules = [m for m in (args.module or MODULES) if available(m)]
    kinds = ["asyncio", "treadle"] if args.loop == "both" else [args.loop]
    print(
        f"CPython {sys.version.split()[0]}: test.test_asyncio on "
        f"{' and '.join(kinds)} (passed / failed / skipped)",
        flush=True,
    )
    header = f"{'module':<26}" + "".join(f"{k:>22}" for k in kinds)
    print(header, flush=True)
    results: dict[str, dict[str, Any]] = {}
    totals = {k: {"pass": 0, "fail": 0, "skip": 0} for k in kinds}
    started = time.monotonic()
    for module in modules:
        results[module] = {}
        for kind in kinds:
            results[module][kind] = run_module(module, kind, args.timeout)
            for key in totals[kind]:
                totals[kind][key] += results[module][kind]["counts"][key]
        row = f"{module:<26}"
        for kind in kinds:
            c = results[module][kind]["counts"]
            row += f"{c['pass']:>12} / {c['fail']:>3} / {c['skip']:>3}"
        print(row, flush=True)
    row = f"{'total':<26}"
    for kind in kinds:
        c = totals[kind]
        row += f"{c['pass']:>12} / {c['fail']:>3} / {c['skip']:>3}"
    print(row)
    print(f"({time.monotonic() - started:.0f} s)")

    if args.failures and "asyncio" in kinds and "treadle" in kinds:
        print("\nPass on the stdlib loop, fail on Treadle:")
        for module in modules:
            ok_on_stdlib = set(results[module]["asyncio"]["failing"])
            for test in results[module]["treadle"]["failing"]:
                if test not in ok_on_stdlib:
                    print(f"  {test}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.record:
        counts = {m: results[m]["treadle"]["counts"] for m in modules if "treadle" in results[m]}
        args.record.write_text(json.dumps(counts, indent=1, sort_keys=True) + "\n")
    if args.check:
        expected = json.loads(args.check.read_text())
        worse = []
        for module, want in expected.items():
            got = results.get(module, {}).get("treadle")
            if got is not None and got["counts"]["pass"] < want["pass"]:
                worse.append(f"{module}: {got['counts']['pass']} passed, recorded {want['pass']}")
                for test in got["failing"]:
                    print(f"  failing: {test}")
        if worse:
            print("Below the recorded counts:\n  " + "\n  ".join(worse))
            return 1
        print("At or above the recorded counts.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
