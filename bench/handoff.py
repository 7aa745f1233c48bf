"""Handoff benchmark: tickets routed per second, and the time from escalation to an agent's subscriber
receiving the ticket (p50, p99) with 50 agents connected, on a real redis-server and SQLite.

Run: python bench/handoff.py --out bench/results/handoff.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.store.db import Database  # noqa: E402
from handoff.models import HandoffBase  # noqa: E402
from handoff.queues import agent_channel, connect  # noqa: E402
from handoff.service import HandoffService  # noqa: E402
from handoff.triggers import EscalationFacts, evaluate_triggers  # noqa: E402
from nlu.types import ParseResult, Sentiment  # noqa: E402
from tests.servers import RedisServer  # noqa: E402

LANGUAGES = ("en", "de", "fr", "es", "zh")


def _parse(language: str) -> ParseResult:
    scores = {"angry": 0.9, "urgent": 0.1, "threat": 0.1, "human": 0.1}
    return ParseResult("This is unacceptable", language, 0.99, None, 0.3, [], [],
                       Sentiment(scores=scores, labels=("angry",)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


async def run(agents: int, tickets: int, rate: float, workdir: Path) -> dict[str, Any]:
    redis_server = RedisServer(workdir / "redis").start()
    # The app's own database handle, so SQLite runs with the same pragmas (WAL, synchronous=NORMAL).
    db = Database(f"sqlite+aiosqlite:///{workdir / 'bench.db'}")
    engine = db.engine
    try:
        async with engine.begin() as conn:
            await conn.run_sync(HandoffBase.metadata.create_all)
        sessions = db.sessions
        redis = connect(redis_server.url)
        service = HandoffService(sessions, redis)
        await service.create_team("bench", languages=list(LANGUAGES))
        agent_ids = []
        for i in range(agents):
            # Everyone speaks English plus one other language, so routing has to match skills.
            langs = ["en", LANGUAGES[1 + i % (len(LANGUAGES) - 1)]]
            agent = await service.create_agent(f"agent{i}", "pw", "bench", languages=langs,
                                               max_open_threads=tickets)
            agent_ids.append(agent.id)
            await service.heartbeat(agent.id)

        # 50 consoles: one pub/sub connection each, as the SSE endpoint of each agent would hold.
        received: dict[int, float] = {}
        expected: set[int] = set()
        all_done = asyncio.Event()
        receivers: list[int] = []
        listeners = []
        for agent_id in agent_ids:
            client = connect(redis_server.url)
            pubsub = client.pubsub()
            await pubsub.subscribe(agent_channel(agent_id))
            listeners.append((client, pubsub))

        async def listen(pubsub: Any) -> None:
            async for message in pubsub.listen():
                if message["type"] == "message":
                    event = json.loads(message["data"])
                    if event["type"] == "ticket_routed":
                        received.setdefault(event["ticket"]["id"], time.perf_counter())
                        receivers.append(event["ticket"]["agent_id"])
                        if expected and expected <= received.keys():
                            all_done.set()

        listen_tasks = [asyncio.create_task(listen(p)) for _, p in listeners]
        await asyncio.sleep(0.2)

        # Phase 1: routing throughput. Tickets are queued first, then one router drains the stream.
        for n in range(tickets):
            lang = LANGUAGES[n % len(LANGUAGES)]
            facts = EscalationFacts(parse=_parse(lang))
            await service.escalate(customer_id=f"q{n}", conversation_id=f"q{n}", channel="widget", language=lang,
                                   triggers=evaluate_triggers(facts), facts=facts)
        started = time.perf_counter()
        routed = 0
        while routed < tickets:
            batch = await service.route_next("bench", "router-1", count=100)
            routed += sum(1 for r in batch if r.agent_id is not None)
            if not batch:
                break
        routing_seconds = time.perf_counter() - started
        routed_per_second = routed / routing_seconds

        # Phase 2: end-to-end latency at a steady escalation rate with the router running.
        routing_receivers = len(set(receivers))
        received.clear()
        receivers.clear()
        stop = asyncio.Event()
        router = asyncio.create_task(service.run_router("bench", "router-1", stop, block_ms=200))
        sent: dict[int, float] = {}
        interval = 1.0 / rate
        phase_started = time.perf_counter()
        for n in range(tickets):
            lang = LANGUAGES[n % len(LANGUAGES)]
            facts = EscalationFacts(parse=_parse(lang))
            t0 = time.perf_counter()
            esc = await service.escalate(customer_id=f"l{n}", conversation_id=f"l{n}", channel="widget",
                                         language=lang, triggers=evaluate_triggers(facts), facts=facts)
            sent[esc.ticket["id"]] = t0
            delay = phase_started + (n + 1) * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        expected.update(sent)
        if expected <= received.keys():
            all_done.set()
        try:
            await asyncio.wait_for(all_done.wait(), timeout=30)
        except TimeoutError:
            pass  # reported below as fewer tickets delivered than sent
        stop.set()
        await router
        latencies = [(received[t] - sent[t]) * 1000 for t in sent if t in received]
        for task in listen_tasks:
            task.cancel()
        for client, pubsub in listeners:
            await pubsub.aclose()
            await client.aclose()
        await redis.aclose()
        latency_receivers = len(set(receivers))
        return {
            "agents_connected": agents,
            "tickets": tickets,
            "routing": {"routed": routed, "seconds": round(routing_seconds, 3),
                        "tickets_per_second": round(routed_per_second, 1)},
            "escalation_to_agent_ms": {
                "rate_per_second": rate,
                "delivered": len(latencies),
                "p50": round(statistics.median(latencies), 2) if latencies else None,
                "p99": round(percentile(latencies, 99), 2) if latencies else None,
                "max": round(max(latencies), 2) if latencies else None,
            },
            "agents_that_received_tickets": {"routing": routing_receivers, "latency": latency_receivers},
            "database": "sqlite (WAL, synchronous=NORMAL, as bot/store/db.py sets it)",
            "redis": "redis-server (AOF, appendfsync always) on loopback",
            # The machine may be shared: read the latency figures against the load on its cores.
            "cpu_count": os.cpu_count(),
            "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        await engine.dispose()
        redis_server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results/handoff.json"))
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--tickets", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="escalations per second in the latency phase")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="nd-bench-handoff-"))
    try:
        result = asyncio.run(run(args.agents, args.tickets, args.rate, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    lat = result["escalation_to_agent_ms"]
    print(f"handoff: {result['routing']['tickets_per_second']} tickets routed/s; escalation -> agent screen "
          f"p50 {lat['p50']} ms, p99 {lat['p99']} ms ({lat['delivered']}/{result['tickets']} delivered, "
          f"{result['agents_connected']} agents connected)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
