"""The `treadle` command (also `python -m treadle`): serve an app, or run the demo.

    treadle run examples.hello:app                  # http://127.0.0.1:8080, one process
    treadle run myapp:app --host 0.0.0.0 --port 80 --workers 4 --access-log
    treadle run myapp:make_app --factory --unix /run/myapp.sock
    treadle run myapp:app --workers 4 --max-requests 10000 --max-requests-jitter 1000
    treadle run myapp:app --reload                  # development: restart on change
    treadle demo                                    # the seed's coroutine programs

`treadle run` imports `module:app` with the current directory on `sys.path`
(as uvicorn does) and serves it with production defaults: no reload, no
debug mode, no access log unless asked. It prints one line once it is serving,
with the real address (so `--port 0` tells which port it got), and stops
gracefully on SIGINT or SIGTERM; SIGHUP to the parent replaces the workers one
at a time with the application's code loaded again (a deploy is `git pull &&
kill -HUP PID`). How workers are forked, share the port and are replaced
(after a crash, after `--max-requests`, past `--workers-max-rss`, on SIGHUP,
with `--reload`) is told in `treadle.workers`. The command line is only
parsing: this module turns arguments into `workers.ServeOptions`.

`treadle demo` runs the seed's programs from `examples/` on Treadle's loop, each
in its own interpreter, so a new user sees generator coroutines,
`@coroutine`/`yield from` and async/await working on Python 3.11+. Plain
`treadle` prints the help (exit 2): with a server command on offer, guessing
a default would surprise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from .http.proxy import TrustedProxies
from .workers import EXIT_APP_ERROR, INTERFACES, AppLoadError, AppTarget, ServeOptions, serve

__all__ = ["demo", "main", "run"]

SEED_PROGRAMS = [
    ("A generator as a coroutine (plain Python, no loop)", "seed_1_generator.py"),
    ("A generator-based coroutine on the event loop", "seed_2_coroutine.py"),
    ("Two coroutines on one thread", "seed_3_two_coroutines.py"),
    ("async/await", "seed_4_async_await.py"),
]


def _find_examples(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / "examples"
        if (candidate / SEED_PROGRAMS[0][1]).is_file():
            return candidate
    return None


def demo(examples: Path | None) -> int:
    """Run the seed's programs 1-4, printing each one's output under a title."""
    folder = examples or _find_examples(Path.cwd()) or _find_examples(Path(__file__).parent)
    if folder is None:
        print(
            "treadle demo: no examples/ folder found; run it from a Treadle checkout",
            file=sys.stderr,
        )
        return 2
    env = dict(os.environ)
    # The examples import treadle: make sure they find this one.
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    for number, (title, name) in enumerate(SEED_PROGRAMS, 1):
        print(f"== {number}. {title} ({name})", flush=True)
        result = subprocess.run([sys.executable, str(folder / name)], env=env, check=False)
        if result.returncode != 0:
            return result.returncode
        print(flush=True)
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"must be true or false, got {text}")


def _environment_defaults(command: argparse.ArgumentParser) -> None:
    """Every option of `command` also from `TREADLE_<OPTION>` in the
    environment (`--ws-max-size` from TREADLE_WS_MAX_SIZE, `--no-gc-tuning`
    from TREADLE_NO_GC_TUNING=1...); the command line wins. A bad value is
    reported as the option's would be."""
    for action in command._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs or action.dest == "help":
            continue
        name = "TREADLE_" + longs[0][2:].upper().replace("-", "_")
        text = os.environ.get(name)
        if text is None:
            continue
        try:
            if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
                if _boolean(text):
                    action.default = action.const
            elif action.type is not None:
                action.default = action.type(text)  # type: ignore[operator]
            else:
                action.default = text
        except (argparse.ArgumentTypeError, ValueError) as exc:
            command.error(f"{name}={text!r}: {exc}")
        if action.choices is not None and action.default not in action.choices:
            command.error(f"{name}={text!r}: not one of {', '.join(map(str, action.choices))}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="treadle",
        description="Treadle: an asynchronous IO system for Python.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run_cmd = commands.add_parser(
        "run",
        help="serve a web application",
        description="Serve a treadle.web application until SIGINT or SIGTERM, "
        "then stop gracefully.",
    )
    run_cmd.add_argument(
        "app",
        metavar="APP",
        help="module:attribute naming the application: a treadle.web.Application, an "
        "ASGI 3 app, or with --interface wsgi a WSGI app (or, with --factory, a callable "
        "returning one), imported with the current directory on sys.path",
    )
    run_cmd.add_argument(
        "--interface",
        choices=INTERFACES,
        default="auto",
        help="how APP is served: auto (a web.Application natively, an ASGI 3 app as "
        "ASGI), web, asgi, or wsgi (which must be named) (default: auto)",
    )
    run_cmd.add_argument("--host", help="the address to listen on (default: 127.0.0.1)")
    run_cmd.add_argument(
        "--port", type=_port, help="the TCP port (default: 8080; 0: any free port)"
    )
    run_cmd.add_argument(
        "--unix",
        metavar="PATH",
        help="listen on this Unix socket (instead of TCP, unless --host or --port is given too)",
    )
    run_cmd.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="serve from N pre-forked processes (default: 1, no fork, unless an option "
        "below needs a parent to replace the worker)",
    )
    run_cmd.add_argument(
        "--max-requests",
        type=_positive_int,
        default=None,
        metavar="N",
        help="replace a worker once it has served N requests: its replacement starts and "
        "listens before it stops accepting and drains (default: never)",
    )
    run_cmd.add_argument(
        "--max-requests-jitter",
        type=_count,
        default=0,
        metavar="J",
        help="add a random 0 to J to each worker's --max-requests, so that workers are "
        "not all replaced at once (default: 0)",
    )
    run_cmd.add_argument(
        "--workers-max-rss",
        type=_positive_int,
        default=None,
        metavar="MIB",
        help="replace a worker whose resident memory grows past MIB mebibytes, the same "
        "way (checked every second; default: no limit)",
    )
    run_cmd.add_argument(
        "--reload",
        action="store_true",
        help="development only: restart the worker when a .py file under the app's folder "
        "changes (one worker; not with --workers)",
    )
    run_cmd.add_argument(
        "--access-log",
        action="store_true",
        help="log each request to stderr in the combined format (logger treadle.access)",
    )
    run_cmd.add_argument(
        "--factory",
        action="store_true",
        help="APP is a callable (maybe async) that returns the application",
    )
    run_cmd.add_argument(
        "--shutdown-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="how long in-flight requests may take to finish at a stop (default: 30)",
    )
    run_cmd.add_argument(
        "--backlog",
        type=_positive_int,
        default=2048,
        metavar="N",
        help="the listen queue length (default: 2048)",
    )
    run_cmd.add_argument(
        "--no-reuse-port",
        dest="reuse_port",
        action="store_false",
        default=None,
        help="with --workers: share one inherited listening socket instead of one "
        "SO_REUSEPORT socket per worker (the default on Linux)",
    )
    run_cmd.add_argument(
        "--handler-cancellation",
        action="store_true",
        help="cancel a handler that is waiting when its client goes away (off by "
        "default, as in aiohttp: the handler then runs on to its end)",
    )
    run_cmd.add_argument(
        "--no-gc-tuning",
        dest="gc_tuning",
        action="store_false",
        help="leave the garbage collector's thresholds alone (by default a worker "
        "freezes what startup made and collects the young generation every 20,000 "
        "allocations, not 700: see treadle.web.runner.tune_gc_for_serving)",
    )
    run_cmd.add_argument(
        "--timeout-keep-alive",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="close a keep-alive connection idle this long (default: 75)",
    )
    run_cmd.add_argument(
        "--proxy-headers",
        action="store_true",
        help="believe Forwarded and X-Forwarded-For/-Proto/-Host from the peers "
        "--forwarded-allow-ips names (the client address, scheme and host the app sees)",
    )
    run_cmd.add_argument(
        "--forwarded-allow-ips",
        default="",
        metavar="LIST",
        help="comma-separated IPs and CIDR networks of trusted proxies, or * for any "
        "(default: none: forwarding information is ignored)",
    )
    run_cmd.add_argument(
        "--proxy-protocol",
        action="store_true",
        help="trusted proxies (--forwarded-allow-ips) send the PROXY protocol (v1 or v2) "
        "before HTTP, as HAProxy and cloud balancers do",
    )
    run_cmd.add_argument(
        "--limit-concurrency",
        type=_positive_int,
        default=None,
        metavar="N",
        help="past N requests in flight in a worker, answer 503 with Retry-After at once "
        "(WebSockets count while open; idle keep-alive connections do not)",
    )
    run_cmd.add_argument(
        "--max-connections",
        type=_positive_int,
        default=None,
        metavar="N",
        help="past N open connections in a worker, close new ones as soon as accepted",
    )
    run_cmd.add_argument(
        "--lifespan",
        choices=("auto", "on", "off"),
        default="auto",
        help="ASGI: run the app's lifespan startup and shutdown; auto goes on without "
        "it when the app does not support it, on makes that an error (default: auto)",
    )
    run_cmd.add_argument(
        "--root-path",
        default="",
        metavar="PATH",
        help="ASGI and WSGI: the path the app is mounted at, behind a proxy "
        "(scope root_path, SCRIPT_NAME)",
    )
    run_cmd.add_argument(
        "--limit-request-body",
        type=_positive_int,
        default=None,
        metavar="BYTES",
        help="ASGI and WSGI: refuse request bodies larger than this with 413 "
        "(default: no limit; treadle.web apps have their own client_max_size)",
    )
    run_cmd.add_argument(
        "--ws-max-size",
        type=_positive_int,
        default=16 * 1024 * 1024,
        metavar="BYTES",
        help="ASGI: the largest WebSocket message (default: 16 MiB)",
    )
    run_cmd.add_argument(
        "--ws-ping-interval",
        type=_seconds,
        default=20.0,
        metavar="SECONDS",
        help="ASGI: ping a WebSocket silent this long (0: never) (default: 20)",
    )
    run_cmd.add_argument(
        "--ws-ping-timeout",
        type=_seconds,
        default=20.0,
        metavar="SECONDS",
        help="ASGI: close a WebSocket whose ping gets no answer this long (default: 20)",
    )
    run_cmd.add_argument(
        "--ws-per-message-deflate",
        type=_boolean,
        default=True,
        metavar="BOOL",
        help="ASGI: accept permessage-deflate compression (default: true)",
    )
    run_cmd.add_argument(
        "--wsgi-threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help="WSGI: threads that run the app (default: min(32, CPUs + 4))",
    )
    _environment_defaults(run_cmd)
    demo_cmd = commands.add_parser("demo", help="run the seed's coroutine programs")
    demo_cmd.add_argument("--examples", type=Path, default=None, help="the examples folder")
    return parser


def run(args: argparse.Namespace) -> int:
    """`treadle run`: serve the application the arguments name."""
    try:
        target = AppTarget(args.app, factory=args.factory, interface=args.interface)
    except AppLoadError as exc:
        print(f"treadle run: error: {exc}", file=sys.stderr)
        return EXIT_APP_ERROR
    try:
        TrustedProxies(args.forwarded_allow_ips)
    except ValueError as exc:
        print(f"treadle run: error: --forwarded-allow-ips: {exc}", file=sys.stderr)
        return EXIT_APP_ERROR
    if (args.proxy_headers or args.proxy_protocol) and not args.forwarded_allow_ips:
        print(
            "treadle run: note: no --forwarded-allow-ips: no peer is trusted, so forwarding "
            "information is ignored",
            file=sys.stderr,
        )
    tcp = args.unix is None or args.host is not None or args.port is not None
    options = ServeOptions(
        target=target,
        host="127.0.0.1" if args.host is None else args.host,
        port=8080 if args.port is None else args.port,
        tcp=tcp,
        unix=args.unix,
        workers=args.workers,
        access_log=args.access_log,
        shutdown_timeout=args.shutdown_timeout,
        backlog=args.backlog,
        reuse_port=args.reuse_port,
        gc_tuning=args.gc_tuning,
        handler_cancellation=args.handler_cancellation,
        keepalive_timeout=args.timeout_keep_alive,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        proxy_protocol=args.proxy_protocol,
        limit_concurrency=args.limit_concurrency,
        max_connections=args.max_connections,
        lifespan=args.lifespan,
        root_path=args.root_path,
        limit_request_body=args.limit_request_body,
        ws_max_size=args.ws_max_size,
        ws_ping_interval=args.ws_ping_interval or None,
        ws_ping_timeout=args.ws_ping_timeout or None,
        ws_per_message_deflate=args.ws_per_message_deflate,
        wsgi_threads=args.wsgi_threads,
        max_requests=args.max_requests,
        max_requests_jitter=args.max_requests_jitter,
        workers_max_rss=args.workers_max_rss,
        reload=args.reload,
    )
    try:
        return serve(options)
    except KeyboardInterrupt:
        # Ctrl+C before the server's own handlers are in place (during the
        # import, say): stop quietly, with the shell's status for SIGINT.
        return 130


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command; the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args)
    if args.command == "demo":
        return demo(args.examples)
    parser.print_help(sys.stderr)
    return 2
