"""The access log: one line per request in the combined log format.

    127.0.0.1 - - [24/Nov/2026:18:00:00 +0000] "GET /hello HTTP/1.1" 200 21 "-" "curl/8" 0.000153

Off unless asked for (`run_app(access_log=...)`, `treadle run --access-log`):
formatting a line per request is a measurable cost on a fast server. It wraps
the HTTP layer's application callable (`with_access_log`), so every
interface (treadle.web, ASGI, WSGI) logs the same lines.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .body import Body
from .parser import Request as Message
from .server import App, ResponseWriter

__all__ = ["AccessLogger", "with_access_log"]


class AccessLogger:
    """Formats and emits access-log lines to a `logging.Logger`."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def log(self, message: Message, writer: ResponseWriter, elapsed: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        peer = writer.get_extra_info("peername")
        remote = peer[0] if isinstance(peer, (tuple, list)) else "-"
        when = time.strftime("[%d/%b/%Y:%H:%M:%S +0000]", time.gmtime())
        headers = message.headers
        referer = headers.get("Referer") or "-"
        agent = headers.get("User-Agent") or "-"
        line = (
            f'{remote} - - {when} "{message.method} {message.target} '
            f'HTTP/{message.version[0]}.{message.version[1]}" {writer.status or "-"} '
            f"{writer.body_bytes if hasattr(writer, 'body_bytes') else '-'} "
            f'"{_clean(referer)}" "{_clean(agent)}" {elapsed:.6f}'
        )
        self.logger.info(line)


def _clean(value: str) -> str:
    # Header values are already free of CR/LF; keep quotes from breaking the line.
    return value.replace('"', '\\"')


def with_access_log(app: App, logger: logging.Logger) -> App:
    """`app`, logging a line to `logger` after each request (whatever the
    handler did: returned, raised or was cancelled)."""
    log = AccessLogger(logger)

    async def logged(message: Message, body: Body, writer: ResponseWriter) -> None:
        started = asyncio.get_running_loop().time()
        try:
            await app(message, body, writer)
        finally:
            log.log(message, writer, asyncio.get_running_loop().time() - started)

    return logged
