"""The WebSocket echo app on picows (Cython), the ceiling of `bench/ws.py`.

    python -m bench.apps.ws_picows_app --port PORT [--uvloop]

The ceiling of `bench/ws.py`: picows parses and builds frames in Cython and
hands the listener each frame, not each message. Every text and binary frame
goes back as it came (the load generator sends each message as one whole
frame); a close frame is answered, then the connection closed; pings are
answered by picows itself (`enable_auto_pong`). picows never negotiates
permessage-deflate. On the stdlib loop, or uvloop with `--uvloop` (its own
examples and benchmarks run on uvloop).
"""

from __future__ import annotations

import asyncio

from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from . import launcher_args

_DATA = (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION)


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind in _DATA:
            transport.send(kind, frame.get_payload_as_memoryview(), frame.fin)
        elif kind == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


def listener_factory(request: WSUpgradeRequest) -> Echo:
    return Echo()


async def run(host: str, port: int, backlog: int) -> None:
    server = await ws_create_server(listener_factory, host, port, backlog=backlog)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    args = launcher_args(__doc__.split("\n")[0], argv)
    loop: asyncio.AbstractEventLoop
    if args.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(run(args.host, args.port, args.backlog))
    except KeyboardInterrupt:
        pass
    finally:
        loop.close()


if __name__ == "__main__":
    main()
