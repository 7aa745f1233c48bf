"""SLA clocks under a controllable clock: a warning before the deadline, a breach and a lead escalation
after it, clocks that pause while the team is closed, next-response clocks and snoozes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from handoff.clock import FakeClock
from handoff.service import HandoffService
from handoff.sla import SlaMonitor, SlaPolicy, SlaTarget
from handoff.triggers import EscalationFacts, evaluate_triggers
from tests.handoff.conftest import SHENZHEN_HOURS
from tests.handoff.helpers import parse


async def setup(service: HandoffService, pause: bool = True) -> tuple[int, int]:
    await service.create_team("shenzhen", timezone="Asia/Shanghai", hours=SHENZHEN_HOURS, languages=["en"],
                              pause_sla_outside_hours=pause)
    agent = await service.create_agent("lina", "pw", "shenzhen", languages=["en"])
    lead = await service.create_agent("wei", "pw", "shenzhen", roles=["agent", "lead"], languages=["en"])
    await service.heartbeat(agent.id)
    return agent.id, lead.id


async def escalate_p1(service: HandoffService) -> int:
    facts = EscalationFacts(parse=parse("I will sue you", "en", "threat"))
    esc = await service.escalate(customer_id="c1", conversation_id="v1", channel="widget", language="en",
                                 triggers=evaluate_triggers(facts), facts=facts, shopper_timezone="America/New_York")
    return int(esc.ticket["id"])


class Published:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        self.events.append((kind, payload))


async def test_p1_warns_at_80_percent_then_breaches_and_escalates_to_the_lead(
        service: HandoffService, clock: FakeClock) -> None:
    agent_id, lead_id = await setup(service)
    ticket_id = await escalate_p1(service)  # Tuesday 10:00 Shenzhen, P1: first response within 15 min
    published = Published()
    monitor = SlaMonitor(service.sessions, clock, published)

    clock.advance(timedelta(minutes=11))
    assert await monitor.tick() == []
    clock.advance(timedelta(minutes=1))  # 12 of 15 minutes gone
    alerts = await monitor.tick()
    assert [(a.ticket_id, a.clock, a.kind) for a in alerts] == [(ticket_id, "first_response", "warning")]
    assert await monitor.tick() == []  # a warning is raised once

    clock.advance(timedelta(minutes=3))
    alerts = await monitor.tick()
    assert [(a.clock, a.kind, a.lead_ids) for a in alerts] == [("first_response", "breach", (lead_id,))]
    assert await monitor.tick() == []
    assert [k for k, _ in published.events] == ["sla_warning", "sla_breach"]

    ticket = await service.ticket(lead_id, ticket_id)
    assert ticket.escalated_to_lead and ticket.breaches == ["first_response"]
    kinds = [e.kind for e in await service.events(lead_id, ticket_id)]
    assert kinds[-3:] == ["warned", "breached", "escalated_to_lead"]


async def test_a_timely_reply_stops_the_first_response_clock(service: HandoffService, clock: FakeClock) -> None:
    agent_id, _ = await setup(service)
    ticket_id = await escalate_p1(service)
    await service.route_next("shenzhen", "r")
    await service.claim(agent_id, ticket_id)
    clock.advance(timedelta(minutes=5))
    await service.record_reply(agent_id, ticket_id, "Sorry to hear that, I am on it.")
    monitor = SlaMonitor(service.sessions, clock)
    clock.advance(timedelta(minutes=30))
    assert await monitor.tick() == []
    # The shopper writes again: the next reply is due within 30 minutes (P1 next-response target).
    await service.customer_wrote(ticket_id, channel="email")
    clock.advance(timedelta(minutes=24))
    assert [(a.clock, a.kind) for a in await monitor.tick()] == [("next_response", "warning")]
    clock.advance(timedelta(minutes=7))
    assert [(a.clock, a.kind) for a in await monitor.tick()] == [("next_response", "breach")]
    await service.record_reply(agent_id, ticket_id, "Refund is on its way.")
    ticket = await service.ticket(agent_id, ticket_id)
    assert ticket.next_response_due is None and "email" in ticket.channels


async def test_clock_pauses_overnight_and_over_the_weekend(service: HandoffService, clock: FakeClock) -> None:
    await setup(service)
    clock.set(datetime(2026, 3, 13, 9, 50, tzinfo=UTC))  # Friday 17:50 in Shenzhen, 10 minutes before closing
    ticket_id = await escalate_p1(service)
    monitor = SlaMonitor(service.sessions, clock)
    clock.set(datetime(2026, 3, 15, 12, 0, tzinfo=UTC))  # Sunday: two days later, but only 10 open minutes
    assert await monitor.tick() == []
    clock.set(datetime(2026, 3, 16, 1, 2, tzinfo=UTC))  # Monday 09:02: 12 open minutes -> warning
    assert [a.kind for a in await monitor.tick()] == ["warning"]
    clock.set(datetime(2026, 3, 16, 1, 5, tzinfo=UTC))  # Monday 09:05: 15 open minutes -> breach
    alerts = await monitor.tick()
    assert [a.kind for a in alerts] == ["breach"]
    assert alerts[0].ticket_id == ticket_id


async def test_without_pausing_the_clock_runs_on_wall_time_and_the_shopper_gets_a_promise(
        service: HandoffService, clock: FakeClock) -> None:
    await setup(service, pause=False)
    facts = EscalationFacts(parse=parse("I will sue you", "en", "threat"))
    clock.set(datetime(2026, 3, 14, 15, 0, tzinfo=UTC))  # Saturday: closed
    esc = await service.escalate(customer_id="c1", conversation_id="v1", channel="widget", language="de",
                                 triggers=evaluate_triggers(facts), facts=facts, shopper_timezone="Europe/Berlin")
    assert esc.out_of_hours and esc.acknowledgement is not None
    assert "bis Montag, 2:00 Uhr Ihrer Zeit" in esc.acknowledgement
    monitor = SlaMonitor(service.sessions, clock)
    clock.advance(timedelta(minutes=15))
    assert [a.kind for a in await monitor.tick()] == ["breach"]


async def test_custom_policy_warns_minutes_before_the_deadline(
        service: HandoffService, clock: FakeClock, sessions: Any, redis_url: str) -> None:
    policy = SlaPolicy(targets={tier: SlaTarget(first_response=timedelta(hours=1), next_response=timedelta(hours=1),
                                                resolution=timedelta(hours=8)) for tier in ("P1", "P2", "P3", "P4")},
                       warn_before=timedelta(minutes=5))
    custom = HandoffService(sessions, service.redis, clock=clock, sla=policy)
    await setup(custom)
    await escalate_p1(custom)
    monitor = SlaMonitor(sessions, clock)
    clock.advance(timedelta(minutes=54))
    assert await monitor.tick() == []
    clock.advance(timedelta(minutes=1))
    assert [a.kind for a in await monitor.tick()] == ["warning"]


async def test_snoozed_ticket_comes_back_when_the_snooze_ends(service: HandoffService, clock: FakeClock) -> None:
    agent_id, _ = await setup(service)
    ticket_id = await escalate_p1(service)
    await service.route_next("shenzhen", "r")
    await service.record_reply(agent_id, ticket_id, "Let me check with the warehouse.")
    await service.snooze(agent_id, ticket_id, clock.now() + timedelta(minutes=20))
    assert (await service.ticket(agent_id, ticket_id)).status == "snoozed"
    published = Published()
    monitor = SlaMonitor(service.sessions, clock, published)
    clock.advance(timedelta(minutes=21))
    await monitor.tick()
    assert (await service.ticket(agent_id, ticket_id)).status == "claimed"
    assert ("ticket_reopened", {"ticket_id": ticket_id, "agent_id": agent_id}) in published.events


async def test_queue_is_sorted_by_priority_then_time_left(service: HandoffService, clock: FakeClock) -> None:
    await service.create_team("eu", languages=["en"])
    lead = await service.create_agent("lee", "pw", "eu", roles=["lead"], languages=["en"])
    calm = EscalationFacts(parse=parse("agent please", "en", "human"))
    angry = EscalationFacts(parse=parse("This is outrageous", "en", "angry"))
    first = await service.escalate(customer_id="a", conversation_id="a", channel="widget", language="en",
                                   triggers=evaluate_triggers(calm), facts=calm)
    clock.advance(timedelta(minutes=10))
    second = await service.escalate(customer_id="b", conversation_id="b", channel="widget", language="en",
                                    triggers=evaluate_triggers(calm), facts=calm)
    third = await service.escalate(customer_id="c", conversation_id="c", channel="widget", language="en",
                                   triggers=evaluate_triggers(angry), facts=angry)
    order = [t.id for t in await service.tickets_for(lead.id)]
    assert order == [third.ticket["id"], first.ticket["id"], second.ticket["id"]]


async def test_running_monitor_tells_the_agent_and_the_lead_on_their_channels(
        service: HandoffService, clock: FakeClock, redis_url: str) -> None:
    import asyncio
    import json

    import redis.asyncio as aioredis

    from handoff.queues import agent_channel

    agent_id, lead_id = await setup(service)
    ticket_id = await escalate_p1(service)
    await service.route_next("shenzhen", "r")
    listener = aioredis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = listener.pubsub()
    await pubsub.subscribe(agent_channel(agent_id), agent_channel(lead_id))
    await pubsub.get_message(timeout=1.0)
    await pubsub.get_message(timeout=1.0)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run_sla_monitor(stop, interval=0.05))
    clock.advance(timedelta(minutes=16))  # past the P1 first-response deadline
    got: list[tuple[str, str]] = []
    for _ in range(40):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.25)
        if message:
            got.append((message["channel"], json.loads(message["data"])["type"]))
        if len(got) == 2:
            break
    stop.set()
    await task
    assert sorted(got) == sorted([(agent_channel(agent_id), "sla_breach"), (agent_channel(lead_id), "sla_breach")])
    assert (await service.ticket(lead_id, ticket_id)).escalated_to_lead
    await pubsub.aclose()
    await listener.aclose()
