"""A FastAPI app served by Treadle: `treadle run examples.fastapi_app:app`.

(FastAPI is not a dependency of Treadle: `pip install -e '.[examples]'`.)

- `GET  /todos`          JSON: every todo
- `POST /todos`          JSON body `{"title": ..., "done": false}`: adds one (201)
- `GET  /todos/{id}`     JSON: one todo (404 if there is none)
- `WS   /ws`             a WebSocket that echoes what it is sent
- `/docs`                FastAPI's interactive documentation

The lifespan makes the store the routes share (`request.state.todos`), as an
app would open its database pool.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field


class TodoIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    done: bool = False


class Todo(TodoIn):
    id: int


class Store:
    """The todos, in memory (one per worker process)."""

    def __init__(self) -> None:
        self.todos: dict[int, Todo] = {}
        self._ids = itertools.count(1)

    def add(self, todo: TodoIn) -> Todo:
        new = Todo(id=next(self._ids), **todo.model_dump())
        self.todos[new.id] = new
        return new


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    store = Store()
    store.add(TodoIn(title="serve a FastAPI app with Treadle", done=True))
    yield {"todos": store}


app = FastAPI(title="Treadle todos", lifespan=lifespan)


@app.get("/todos")
async def list_todos(request: Request) -> list[Todo]:
    return list(request.state.todos.todos.values())


@app.post("/todos", status_code=201)
async def add_todo(todo: TodoIn, request: Request) -> Todo:
    added: Todo = request.state.todos.add(todo)
    return added


@app.get("/todos/{todo_id}")
async def get_todo(todo_id: int, request: Request) -> Todo:
    todo: Todo | None = request.state.todos.todos.get(todo_id)
    if todo is None:
        raise HTTPException(404, detail=f"no todo {todo_id}")
    return todo


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass
