"""The real Nightdesk app (create_app, embedded workers and senders) served by uvicorn on a loopback port.

It runs in a thread with its own event loop, so tests can reach the app's objects (`state`) and run
coroutines on that loop (`call`), e.g. to restart the IMAP listener.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import uvicorn

from bot.app import create_app
from bot.config import Settings
from tests.servers import free_port

T = TypeVar("T")


class AppServer:
    def __init__(self, settings: Settings, port: int | None = None) -> None:
        self.settings = settings
        self.port = port or free_port()
        self.app = create_app(settings)
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                     log_level="warning", access_log=False, lifespan="on"))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state(self) -> Any:
        return self.app.state

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._server.serve())

    def start(self, wait_s: float = 120.0) -> AppServer:
        self._thread = threading.Thread(target=self._run, name="nightdesk-app", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise RuntimeError("the Nightdesk app stopped during start-up; see the log above")
            try:
                if self._server.started and httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"Nightdesk not healthy after {wait_s}s")

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the app's own event loop (its Redis and database clients live there)."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(_await(fn), self._loop)
        return await asyncio.wrap_future(future)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._thread = None


async def _await(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()
