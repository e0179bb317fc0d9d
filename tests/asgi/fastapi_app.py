"""A FastAPI app written as FastAPI users write them, served by Treadle in
tests/asgi/test_frameworks.py.

The test copies this file into a temporary folder and serves it as
`fastapi_app:app` with `treadle run`. The folder holds `static/` (mounted at
/static) and receives what the app writes (`notifications.log`); the test
creates `release` there when a background task may finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import (
    BackgroundTasks,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Query,
    Request,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

HERE = Path(__file__).resolve().parent
WAIT_LIMIT = 30.0  # seconds a background task waits for the test's go-ahead


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"model": "the model the lifespan loaded", "started_in": os.getpid()}


app = FastAPI(lifespan=lifespan)
app.mount("/static", StaticFiles(directory=HERE / "static", check_dir=False), name="static")

USERS = {"secret-token-1": "ada", "secret-token-2": "grace"}


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    tags: list[str] = []


class ItemOut(BaseModel):
    name: str
    price_with_tax: float
    tags: list[str]
    owner: str


def current_user(x_token: Annotated[str, Header()]) -> str:
    user = USERS.get(x_token)
    if user is None:
        raise HTTPException(401, detail="unknown token")
    return user


CALLS: list[str] = []


def counted() -> Iterator[int]:
    # A dependency with teardown (as a database session is written).
    CALLS.append("open")
    try:
        yield len(CALLS)
    finally:
        CALLS.append("close")


@app.get("/items/{item_id}")
async def read_item(
    item_id: int,
    q: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    return {"item_id": item_id, "q": q, "limit": limit}


@app.post("/items", status_code=201)
async def create_item(item: Item, user: Annotated[str, Depends(current_user)]) -> ItemOut:
    return ItemOut(
        name=item.name, price_with_tax=round(item.price * 1.2, 2), tags=item.tags, owner=user
    )


@app.get("/me")
def me(user: Annotated[str, Depends(current_user)], n: Annotated[int, Depends(counted)]) -> Any:
    # A sync endpoint: FastAPI runs it in a thread.
    return {"user": user, "dependency_calls": n}


@app.get("/missing/{item_id}")
async def missing(item_id: int) -> None:
    raise HTTPException(404, detail=f"item {item_id} not found")


@app.get("/boom")
async def boom() -> None:
    raise ValueError("an unhandled error")


@app.get("/countdown")
async def countdown(start: int = 3) -> StreamingResponse:
    async def numbers() -> AsyncIterator[bytes]:
        for n in range(start, 0, -1):
            yield f"{n}\n".encode()
            await asyncio.sleep(0)
        yield b"liftoff\n"

    return StreamingResponse(numbers(), media_type="text/plain")


async def notify(token: str) -> None:
    with open(HERE / "notifications.log", "a") as log:
        log.write(f"started {token}\n")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_LIMIT
    while not (HERE / "release").exists() and loop.time() < deadline:
        await asyncio.sleep(0.01)
    with open(HERE / "notifications.log", "a") as log:
        log.write(f"finished {token}\n")


@app.post("/notify/{token}", status_code=202)
async def send_notification(token: str, tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(notify, token)
    return {"queued": token}


@app.get("/state")
async def state(request: Request) -> dict[str, Any]:
    return {"model": request.state.model, "started_in": request.state.started_in}


@app.get("/pid")
async def pid() -> int:
    return os.getpid()


@app.websocket("/ws/{room}")
async def room(websocket: WebSocket, room: str, name: str = "anonymous") -> None:
    await websocket.accept()
    await websocket.send_json({"room": room, "welcome": name})
    try:
        while True:
            text = await websocket.receive_text()
            if text == "bye":
                await websocket.close(code=1000, reason=f"bye, {name}")
                return
            await websocket.send_text(f"{name}@{room}: {text}")
    except WebSocketDisconnect:
        return
