"""A Starlette app that exercises what a real Starlette user writes, served by
Treadle in tests/asgi/test_frameworks.py and by Treadle and uvicorn in
tests/asgi/test_uvicorn_parity.py.

The tests copy this file into a temporary folder and serve it as
`starlette_app:app` with `treadle run`, as a user would (or build one with
`make_app(folder)` in-process). The folder holds `static/` (served under
/static) and receives what the app writes (`background.log`); the test
creates `release` there when a background task may finish. Nothing in it
depends on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

HERE = Path(__file__).resolve().parent
WAIT_LIMIT = 30.0  # seconds a background task waits for the test's go-ahead


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    # The state every request sees as request.state (Starlette >= 0.26).
    yield {"greeting": "hello from the lifespan", "started_in": os.getpid()}
    # The shutdown: after the server has stopped serving.
    with open(app.state.folder / "events.log", "a") as log:
        log.write(f"lifespan shutdown in {os.getpid()}\n")


@contextlib.asynccontextmanager
async def failing_lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    raise RuntimeError("the database at db.invalid cannot be reached")
    yield {}  # pragma: no cover


async def user(request: Request) -> JSONResponse:
    user_id = request.path_params["user_id"]
    return JSONResponse({"id": user_id, "type": type(user_id).__name__})


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"hello, {request.path_params['name']}!")


async def search(request: Request) -> JSONResponse:
    params = request.query_params
    limit = params.get("limit", "10")
    if not limit.isdigit():
        return JSONResponse({"error": f"limit must be a number, not {limit!r}"}, status_code=400)
    return JSONResponse({"q": params.get("q"), "tags": params.getlist("tag"), "limit": int(limit)})


async def echo_json(request: Request) -> JSONResponse:
    try:
        data = await request.json()
    except json.JSONDecodeError as exc:
        # What a validating framework answers to a body it cannot read.
        return JSONResponse({"detail": f"invalid JSON: {exc.msg}"}, status_code=422)
    return JSONResponse({"got": data})


async def digest(request: Request) -> JSONResponse:
    """The size and SHA-256 of the request body, read as a stream."""
    hasher = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        hasher.update(chunk)
        size += len(chunk)
    return JSONResponse({"size": size, "sha256": hasher.hexdigest()})


async def numbers(request: Request) -> StreamingResponse:
    count = int(request.query_params.get("count", "5"))

    async def lines() -> AsyncIterator[str]:
        for n in range(count):
            yield f"line {n}\n"
            await asyncio.sleep(0)

    return StreamingResponse(lines(), media_type="text/plain")


async def record_after_release(folder: Path, token: str) -> None:
    # Runs once the response is out; it can only finish after the test has
    # read the response and created `release`.
    with open(folder / "background.log", "a") as log:
        log.write(f"started {token}\n")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_LIMIT
    while not (folder / "release").exists() and loop.time() < deadline:
        await asyncio.sleep(0.01)
    with open(folder / "background.log", "a") as log:
        log.write(f"finished {token}\n")


async def background(request: Request) -> PlainTextResponse:
    token = request.query_params["token"]
    task = BackgroundTask(record_after_release, request.app.state.folder, token)
    return PlainTextResponse(f"accepted {token}", background=task)


async def state(request: Request) -> JSONResponse:
    return JSONResponse(
        {"greeting": request.state.greeting, "started_in": request.state.started_in}
    )


async def pid(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(os.getpid()))


async def fail(request: Request) -> Response:
    raise RuntimeError("the handler failed")


async def teapot(request: Request) -> Response:
    raise HTTPException(418, detail="I'm a teapot, not a coffee pot")


async def items(request: Request) -> JSONResponse:
    if request.method == "POST":
        return JSONResponse({"created": (await request.json())["name"]}, status_code=201)
    return JSONResponse({"items": ["a", "b"]})


async def slash(request: Request) -> PlainTextResponse:
    return PlainTextResponse("the slashed route")


async def elsewhere(request: Request) -> RedirectResponse:
    return RedirectResponse("/hello/there", status_code=302)


async def blob(request: Request) -> Response:
    return Response(b"x" * 1000, media_type="application/octet-stream")


async def echo(websocket: WebSocket) -> None:
    offered = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol="echo.v1" if "echo.v1" in offered else None)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text == "close-me":
                await websocket.close(code=4001, reason="closing as asked")
                return
            if text is not None:
                await websocket.send_text(f"echo: {text}")
            else:
                await websocket.send_bytes(b"echo: " + message["bytes"])
    except WebSocketDisconnect:
        return


async def ws_denied(websocket: WebSocket) -> None:
    # Before accept: Starlette turns this into a denial response
    # (websocket.http.response) when the server offers the extension.
    raise HTTPException(401, detail="who are you?", headers={"WWW-Authenticate": "Bearer"})


async def ws_refused(websocket: WebSocket) -> None:
    await websocket.close(code=1008)


async def ws_state(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.state.greeting)
    await websocket.close()


def note(request: Request | WebSocket, line: str) -> None:
    """Add a line to `events.log` in the app's folder (the tests read it)."""
    with open(request.app.state.folder / "events.log", "a") as log:
        log.write(line + "\n")


async def ticker(request: Request) -> StreamingResponse:
    # An endless stream (server-sent events, say): it must end when the
    # client goes away.
    async def ticks() -> AsyncIterator[bytes]:
        n = 0
        try:
            while True:
                yield f"tick {n}\n".encode()
                n += 1
                await asyncio.sleep(0.005)
        finally:
            note(request, "ticker stopped")

    return StreamingResponse(ticks(), media_type="text/plain")


async def broken_stream(request: Request) -> StreamingResponse:
    async def rows() -> AsyncIterator[bytes]:
        yield b"the first row\n"
        await asyncio.sleep(0)
        yield b"the second row\n"
        raise RuntimeError("the stream broke half-way")

    return StreamingResponse(rows(), media_type="text/plain")


async def watch(request: Request) -> Response:
    # Long polling: Starlette's is_disconnected() polls receive() with a
    # cancelled scope; then the handler waits on receive() for the disconnect.
    polls = 0
    while not await request.is_disconnected() and polls < 3:
        polls += 1
        await asyncio.sleep(0)
    note(request, f"watch polled {polls}")
    try:
        message = await request.receive()
    except BaseException as exc:
        note(request, f"watch receive raised {type(exc).__name__}")
        raise
    note(request, f"watch got {message['type']}")
    return Response()


async def hold(request: Request) -> Response:
    # Waits for the client to leave (a long poll with nothing to say).
    await request.body()
    note(request, "hold waiting")
    message = await request.receive()
    note(request, f"hold got {message['type']}")
    return Response()


async def scope(request: Request) -> JSONResponse:
    # What the server put in the scope (less the addresses, whose ports are
    # each connection's own).
    scope = request.scope
    return JSONResponse(
        {
            "type": scope["type"],
            "http_version": scope["http_version"],
            "method": scope["method"],
            "scheme": scope["scheme"],
            "root_path": scope["root_path"],
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query_string": scope["query_string"].decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "route_path": request.path_params["rest"],
            "url": str(request.url),
            "body": (await request.body()).decode("latin-1"),
        }
    )


async def cookies(request: Request) -> Response:
    response = PlainTextResponse("cookies set")
    response.set_cookie("session", "abc123", httponly=True, samesite="strict")
    response.set_cookie("theme", "dark", max_age=3600, path="/")
    response.headers.append("X-Multi", "one")
    response.headers.append("X-Multi", "two")
    return response


async def upload(request: Request) -> JSONResponse:
    async with request.form() as form:
        upload = form["file"]
        assert not isinstance(upload, str)
        data = await upload.read()
        return JSONResponse(
            {
                "filename": upload.filename,
                "content_type": upload.content_type,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "comment": form["comment"],
            }
        )


async def ws_return(websocket: WebSocket) -> None:
    # Returns without closing: the server closes (1000).
    await websocket.accept()
    await websocket.send_text("bye without closing")


async def ws_crash(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("about to fail")
    raise RuntimeError("the socket handler failed")


async def ws_crash_early(websocket: WebSocket) -> None:
    raise RuntimeError("the socket handler failed before accepting")


async def ws_record(websocket: WebSocket) -> None:
    # What the app is told when the client closes, and what send() does then.
    await websocket.accept()
    message = await websocket.receive()
    note(websocket, f"ws got {message['type']} {message.get('code')} {message.get('reason')!r}")
    try:
        await websocket.send_text("too late")
    except Exception as exc:
        note(websocket, f"ws send after close raised {type(exc).__name__}")
    else:
        note(websocket, "ws send after close returned")


def make_app(folder: Path, lifespan: Any = lifespan) -> Starlette:
    """The app, with its static files and the files it writes in `folder`."""
    static = StaticFiles(directory=folder / "static", check_dir=False)
    routes = [
        Route("/users/{user_id:int}", user),
        Route("/hello/{name}", hello),
        Route("/search", search),
        Route("/json", echo_json, methods=["POST"]),
        Route("/digest", digest, methods=["POST"]),
        Route("/numbers", numbers),
        Route("/background", background, methods=["POST"]),
        Route("/state", state),
        Route("/pid", pid),
        Route("/fail", fail),
        Route("/teapot", teapot),
        Route("/items", items, methods=["GET", "POST"]),
        Route("/slash/", slash),
        Route("/elsewhere", elsewhere),
        Route("/blob", blob),
        Route("/ticker", ticker),
        Route("/broken-stream", broken_stream),
        Route("/watch", watch),
        Route("/hold", hold),
        Route("/cookies", cookies),
        Route("/scope/{rest:path}", scope, methods=["GET", "POST", "DELETE"]),
        Route("/upload", upload, methods=["POST"]),
        WebSocketRoute("/ws", echo),
        WebSocketRoute("/ws-denied", ws_denied),
        WebSocketRoute("/ws-refused", ws_refused),
        WebSocketRoute("/ws-state", ws_state),
        WebSocketRoute("/ws-return", ws_return),
        WebSocketRoute("/ws-crash", ws_crash),
        WebSocketRoute("/ws-crash-early", ws_crash_early),
        WebSocketRoute("/ws-record", ws_record),
        Mount("/static", static, name="static"),
    ]
    made = Starlette(routes=routes, lifespan=lifespan)
    made.state.folder = folder
    return made


app = make_app(HERE)
failing = make_app(HERE, lifespan=failing_lifespan)
