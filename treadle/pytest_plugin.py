"""Treadle's pytest plugin: fixtures to test a `treadle.web` application.

Installing Treadle registers it (entry point `pytest11`), so any project's
tests can take the fixtures without imports or pytest-asyncio:

    def test_index(treadle_client):
        client = treadle_client(make_app())
        resp = client.get("/")
        assert resp.status == 200
        assert "Treadle" in resp.text

`treadle_client(app, **kwargs)` returns a started `treadle.testing.SyncTestClient`
(the app served on a Treadle loop in a background thread, the test body
synchronous); every client made in a test is closed after it, which runs the
application's cleanup. `loop_factory=asyncio.new_event_loop` serves on the
stdlib loop instead. Annotate the argument as `treadle.pytest_plugin.ClientFactory`;
see `treadle.testing` for the client's methods.

pytest loads every registered plugin at start-up, in every project where
Treadle is installed, so this module stays small: the web framework and the
test client are imported only when a test asks for a fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from .testing import SyncTestClient
    from .web.app import Application

__all__ = ["ClientFactory", "treadle_client"]


class ClientFactory(Protocol):
    """What the `treadle_client` fixture is, to annotate a test's argument."""

    def __call__(self, app: Application, **kwargs: Any) -> SyncTestClient:
        """Serve `app` and return a started client for it."""
        ...


@pytest.fixture
def treadle_client() -> Iterator[ClientFactory]:
    """A factory: `treadle_client(app, **kwargs)` serves `app` and returns a
    synchronous client for it (`SyncTestClient`); closed after the test."""
    from .testing import SyncTestClient

    clients: list[SyncTestClient] = []

    def make(app: Application, **kwargs: Any) -> SyncTestClient:
        client = SyncTestClient(app, **kwargs)
        client.start()
        clients.append(client)
        return client

    try:
        yield make
    finally:
        errors: list[Exception] = []
        for client in reversed(clients):
            try:
                client.close()
            except Exception as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ExceptionGroup("errors while closing treadle_client clients", errors)
