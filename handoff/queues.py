"""Redis side of the handoff: one stream per team (consumer group "router") that never loses or
duplicates a ticket, agent presence, and the pub/sub channels that push updates to agents' screens."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

PREFIX = "nd:handoff:"
ROUTER_GROUP = "router"

# Enqueue at most once per ticket until the router has acknowledged it: a retried escalation (or a
# second channel joining the same ticket) must not put the ticket in the stream twice.
_ENQUEUE = """
local existing = redis.call('GET', KEYS[2])
if existing then return existing end
local id = redis.call('XADD', KEYS[1], '*', 'ticket_id', ARGV[1], 'priority', ARGV[2])
redis.call('SET', KEYS[2], id)
return id
"""
_ACK = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return 1
"""


def _text(value: Any) -> str:
    """Works with clients made with or without decode_responses."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _ticket_id(fields: Any) -> int:
    raw = fields.get("ticket_id") if "ticket_id" in fields else fields.get(b"ticket_id")
    return int(_text(raw))


def connect(url: str) -> Redis:
    """A client that rides out a Redis restart (retries with backoff instead of failing the caller)."""
    return Redis.from_url(
        url, decode_responses=True, health_check_interval=5,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=40),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def stream_key(team: str) -> str:
    return f"{PREFIX}{team}"


def agent_channel(agent_id: int) -> str:
    return f"{PREFIX}agent:{agent_id}"


def team_channel(team: str) -> str:
    return f"{PREFIX}team:{team}"


@dataclass(frozen=True)
class QueueEntry:
    entry_id: str
    ticket_id: int
    redelivered: bool


class TicketQueue:
    """The team streams. Producers `enqueue`; routers `read` (new entries plus entries of dead routers,
    taken over with XAUTOCLAIM) and `ack` once the ticket's routing is committed to the database."""

    def __init__(self, redis: Redis, *, group: str = ROUTER_GROUP, min_idle_ms: int = 30_000) -> None:
        self.redis = redis
        self.group = group
        self.min_idle_ms = min_idle_ms
        self._groups: set[str] = set()

    async def ensure_group(self, team: str) -> None:
        if team in self._groups:
            return
        try:
            await self.redis.xgroup_create(stream_key(team), self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(team)

    async def enqueue(self, team: str, ticket_id: int, priority: str) -> str:
        await self.ensure_group(team)
        marker = f"{PREFIX}queued:{ticket_id}"
        entry_id = await self.redis.eval(_ENQUEUE, 2, stream_key(team), marker, str(ticket_id), priority)
        return _text(entry_id)

    async def read(self, team: str, consumer: str, *, count: int = 100, block_ms: int | None = None
                   ) -> list[QueueEntry]:
        await self.ensure_group(team)
        stream = stream_key(team)
        entries: list[QueueEntry] = []
        try:
            claimed: Any = await self.redis.xautoclaim(stream, self.group, consumer, self.min_idle_ms,
                                                  start_id="0-0", count=count)
            for entry_id, fields in claimed[1]:
                if fields:  # a deleted entry comes back as None
                    entries.append(QueueEntry(_text(entry_id), _ticket_id(fields), True))
            if entries:
                return entries
            got: Any = await self.redis.xreadgroup(self.group, consumer, {stream: ">"}, count=count, block=block_ms)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._groups.discard(team)  # the stream was deleted under us: recreate the group next time
            return []
        for _, items in got or []:
            for entry_id, fields in items:
                entries.append(QueueEntry(_text(entry_id), _ticket_id(fields), False))
        return entries

    async def ack(self, team: str, entry: QueueEntry) -> None:
        await self.redis.eval(_ACK, 2, stream_key(team), f"{PREFIX}queued:{entry.ticket_id}", self.group,
                              entry.entry_id)

    async def ack_many(self, team: str, entries: list[QueueEntry]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry in entries:
                pipe.eval(_ACK, 2, stream_key(team), f"{PREFIX}queued:{entry.ticket_id}", self.group, entry.entry_id)
            await pipe.execute()

    async def pending(self, team: str) -> int:
        await self.ensure_group(team)
        info: Any = await self.redis.xpending(stream_key(team), self.group)
        return int(info["pending"])

    async def length(self, team: str) -> int:
        return int(await self.redis.xlen(stream_key(team)))


class Presence:
    """Which agents have a live console, as a sorted set of agent ids scored by when they expire."""

    def __init__(self, redis: Redis, ttl_seconds: float = 60.0) -> None:
        self.redis = redis
        self.ttl = ttl_seconds

    async def heartbeat(self, team: str, agent_id: int, now: datetime) -> bool:
        """True when the agent was not online before this heartbeat."""
        key = f"{PREFIX}online:{team}"
        score = await self.redis.zscore(key, str(agent_id))
        await self.redis.zadd(key, {str(agent_id): now.timestamp() + self.ttl})
        return score is None or score < now.timestamp()

    async def leave(self, team: str, agent_id: int) -> None:
        await self.redis.zrem(f"{PREFIX}online:{team}", str(agent_id))

    async def online(self, team: str, now: datetime) -> set[int]:
        members: Any = await self.redis.zrangebyscore(f"{PREFIX}online:{team}", now.timestamp(), "+inf")
        return {int(_text(m)) for m in members}


class Notifier:
    """Pushes ticket events to agents' consoles (pub/sub: fast, lossy; the console re-reads the
    database on reconnect, which stays the source of truth)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def to_agent(self, agent_id: int, event: str, payload: dict[str, Any]) -> None:
        await self.redis.publish(agent_channel(agent_id), json.dumps({"type": event, **payload}, default=str))

    async def to_team(self, team: str, event: str, payload: dict[str, Any]) -> None:
        await self.redis.publish(team_channel(team), json.dumps({"type": event, **payload}, default=str))
