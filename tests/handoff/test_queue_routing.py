"""Tickets reach the right agent once: skills, capacity, round-robin, visibility enforced on the server,
one ticket per customer and order, and nothing lost or doubled across a Redis restart."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from handoff.clock import FakeClock
from handoff.queues import agent_channel
from handoff.service import AlreadyClaimed, AtCapacity, HandoffService, NotAllowed
from handoff.triggers import EscalationFacts, evaluate_triggers
from tests.handoff.conftest import SHENZHEN_HOURS
from tests.handoff.helpers import parse
from tests.servers import RedisServer


async def setup_team(service: HandoffService) -> dict[str, int]:
    await service.create_team("shenzhen", timezone="Asia/Shanghai", hours=SHENZHEN_HOURS,
                              languages=["en", "de", "zh"])
    ids = {}
    for login, langs in (("lina", ["zh", "en"]), ("max", ["de", "en"])):
        agent = await service.create_agent(login, "pw-" + login, "shenzhen", languages=langs, max_open_threads=2)
        ids[login] = agent.id
        await service.heartbeat(agent.id)
    lead = await service.create_agent("wei", "pw-wei", "shenzhen", roles=["agent", "lead"], languages=["zh"])
    ids["wei"] = lead.id
    return ids


async def escalate_german_chargeback(service: HandoffService, customer: str = "cust-1", order: str | None = "A1001",
                                     channel: str = "whatsapp"):
    facts = EscalationFacts(parse=parse("Ich mache eine Rückbuchung bei meiner Bank!", "de", "threat"))
    return await service.escalate(customer_id=customer, conversation_id=f"conv-{customer}-{channel}",
                                  channel=channel, language="de", triggers=evaluate_triggers(facts), facts=facts,
                                  order_number=order)


async def test_p1_ticket_goes_to_the_agent_with_the_language_and_the_other_cannot_see_or_claim_it(
        service: HandoffService) -> None:
    ids = await setup_team(service)
    escalation = await escalate_german_chargeback(service)
    assert escalation.priority == "P1" and escalation.created and not escalation.out_of_hours
    routed = await service.route_next("shenzhen", "router-1")
    assert [(r.ticket_id, r.agent_id) for r in routed] == [(escalation.ticket["id"], ids["max"])]
    ticket_id = escalation.ticket["id"]

    assert [t.id for t in await service.tickets_for(ids["max"])] == [ticket_id]
    assert await service.tickets_for(ids["lina"]) == []
    with pytest.raises(NotAllowed, match="not routed to you"):
        await service.claim(ids["lina"], ticket_id)
    with pytest.raises(NotAllowed):
        await service.ticket(ids["lina"], ticket_id)

    claimed = await service.claim(ids["max"], ticket_id)
    assert claimed.status == "claimed" and claimed.agent_id == ids["max"]
    assert (await service.claim(ids["max"], ticket_id)).status == "claimed"  # a double click is harmless
    # The lead sees the whole team queue.
    assert [t.id for t in await service.tickets_for(ids["wei"])] == [ticket_id]
    kinds = [e.kind for e in await service.events(ids["max"], ticket_id)]
    assert kinds == ["created", "routed", "claimed"]


async def test_routed_agent_is_notified_on_their_channel(service: HandoffService, redis_url: str) -> None:
    ids = await setup_team(service)
    listener = aioredis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = listener.pubsub()
    await pubsub.subscribe(agent_channel(ids["max"]))
    await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    escalation = await escalate_german_chargeback(service)
    await service.route_next("shenzhen", "router-1")
    message = None
    for _ in range(20):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message:
            break
    assert message is not None
    event = json.loads(message["data"])
    assert event["type"] == "ticket_routed" and event["ticket"]["id"] == escalation.ticket["id"]
    await pubsub.aclose()
    await listener.aclose()


async def test_round_robin_and_capacity(service: HandoffService) -> None:
    await service.create_team("eu", languages=["en"])
    a = await service.create_agent("ana", "pw", "eu", languages=["en"], max_open_threads=2)
    b = await service.create_agent("ben", "pw", "eu", languages=["en"], max_open_threads=1)
    for agent in (a, b):
        await service.heartbeat(agent.id)
    facts = EscalationFacts(parse=parse("human please", "en", "human"))
    for n in range(4):
        await service.escalate(customer_id=f"c{n}", conversation_id=f"v{n}", channel="widget", language="en",
                               triggers=evaluate_triggers(facts), facts=facts, team="eu")
    routed = await service.route_next("eu", "router-1")
    assert [r.agent_id for r in routed] == [a.id, b.id, a.id, None]  # ben is full after one, ana after two
    waiting = routed[3].ticket_id
    with pytest.raises(AtCapacity, match="resolve or release"):
        await service.claim(b.id, waiting)
    # Ben resolves his ticket: the waiting one is routed to him.
    await service.resolve(b.id, routed[1].ticket_id)
    assert (await service.ticket(b.id, waiting)).agent_id == b.id


async def test_only_one_of_two_agents_wins_a_race_for_an_unrouted_ticket(service: HandoffService) -> None:
    await service.create_team("eu", languages=["en"])
    a = await service.create_agent("ana", "pw", "eu", languages=["en"])
    b = await service.create_agent("ben", "pw", "eu", languages=["en"])
    facts = EscalationFacts(parse=parse("I want a human", "en", "human"))
    esc = await service.escalate(customer_id="c", conversation_id="v", channel="widget", language="en",
                                 triggers=evaluate_triggers(facts), facts=facts, team="eu")
    # Nobody online: the ticket waits unrouted and both skilled agents can see it.
    await service.route_next("eu", "router-1")
    results = await asyncio.gather(service.claim(a.id, esc.ticket["id"]), service.claim(b.id, esc.ticket["id"]),
                                   return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["AlreadyClaimed", "HandoffTicket"]
    assert any(isinstance(r, AlreadyClaimed) for r in results)


async def test_one_open_ticket_per_customer_and_order_across_channels(service: HandoffService) -> None:
    ids = await setup_team(service)
    results = await asyncio.gather(*(escalate_german_chargeback(service, channel=ch)
                                     for ch in ("email", "widget", "whatsapp")))
    assert len({r.ticket["id"] for r in results}) == 1
    assert sorted(r.created for r in results) == [False, False, True]
    routed = await service.route_next("shenzhen", "router-1")
    assert len(routed) == 1 and routed[0].agent_id == ids["max"]
    ticket = await service.ticket(ids["max"], routed[0].ticket_id)
    assert sorted(ticket.channels) == ["email", "whatsapp", "widget"]
    # Another order of the same customer is another ticket; once resolved, a new contact opens a new one.
    other = await escalate_german_chargeback(service, order="A2002")
    assert other.ticket["id"] != ticket.id
    await service.resolve(ids["max"], ticket.id)
    again = await escalate_german_chargeback(service)
    assert again.created and again.ticket["id"] not in (ticket.id, other.ticket["id"])


async def test_ticket_survives_a_redis_restart_between_escalation_and_claim(
        service: HandoffService, redis_server: RedisServer) -> None:
    ids = await setup_team(service)
    escalation = await escalate_german_chargeback(service)
    # The same escalation retried (e.g. the engine's worker redelivered) must not queue it twice.
    await escalate_german_chargeback(service)
    redis_server.restart()
    await service.heartbeat(ids["max"])
    routed = await service.route_next("shenzhen", "router-after-restart")
    assert [(r.ticket_id, r.agent_id) for r in routed] == [(escalation.ticket["id"], ids["max"])]
    assert await service.route_next("shenzhen", "router-after-restart") == []
    assert await service.queue.pending("shenzhen") == 0
    await service.claim(ids["max"], escalation.ticket["id"])
    assert [t.id for t in await service.tickets_for(ids["max"])] == [escalation.ticket["id"]]
    kinds = [e.kind for e in await service.events(ids["max"], escalation.ticket["id"])]
    assert kinds.count("routed") == 1 and kinds.count("claimed") == 1


async def test_entries_of_a_dead_router_are_taken_over_once(service: HandoffService) -> None:
    ids = await setup_team(service)
    escalation = await escalate_german_chargeback(service)
    # Router 1 reads the entry and dies before routing or acknowledging it.
    entries = await service.queue.read("shenzhen", "router-dead")
    assert [e.ticket_id for e in entries] == [escalation.ticket["id"]]
    assert await service.route_next("shenzhen", "router-2") == []  # not idle long enough yet
    await asyncio.sleep(1.1)  # router_min_idle_ms is 1 s in these tests
    routed = await service.route_next("shenzhen", "router-2")
    assert [(r.ticket_id, r.agent_id, r.redelivered) for r in routed] == [(escalation.ticket["id"], ids["max"], True)]
    assert await service.queue.pending("shenzhen") == 0


async def test_router_that_died_after_routing_does_not_route_twice(service: HandoffService) -> None:
    ids = await setup_team(service)
    escalation = await escalate_german_chargeback(service)
    entries = await service.queue.read("shenzhen", "router-dead")
    await service._assign([entries[0].ticket_id])  # routed and committed, then the process died before XACK
    await asyncio.sleep(1.1)
    routed = await service.route_next("shenzhen", "router-2")
    assert routed[0].already_routed and routed[0].agent_id == ids["max"]
    kinds = [e.kind for e in await service.events(ids["max"], escalation.ticket["id"])]
    assert kinds.count("routed") == 1


async def test_release_reassign_and_hand_back(service: HandoffService, clock: FakeClock) -> None:
    ids = await setup_team(service)
    await service.create_agent("jonas", "pw", "shenzhen", languages=["de"])
    escalation = await escalate_german_chargeback(service)
    await service.route_next("shenzhen", "r")
    ticket_id = escalation.ticket["id"]
    await service.claim(ids["max"], ticket_id)
    with pytest.raises(NotAllowed):
        await service.reassign(ids["lina"], ticket_id, ids["lina"])
    jonas = (await service.authenticate("jonas", "pw"))
    assert jonas is not None and await service.authenticate("jonas", "wrong") is None
    moved = await service.reassign(ids["wei"], ticket_id, jonas.id)  # the lead moves it
    assert moved.agent_id == jonas.id
    released = await service.release(jonas.id, ticket_id, reason="going home")
    assert released.status == "open" and released.agent_id is None
    routed = await service.route_next("shenzhen", "r")
    assert routed and routed[0].agent_id == ids["max"]  # jonas is offline, max has the skills
    await service.record_reply(ids["max"], ticket_id, "Wir kümmern uns sofort darum.")
    assert await service.open_ticket_for_conversation("conv-cust-1-whatsapp") is not None
    clock.advance(timedelta(minutes=5))
    done = await service.hand_back(ids["max"], ticket_id, note="refund issued")
    assert done.status == "handed_back" and done.open_key is None
    assert await service.open_ticket_for_conversation("conv-cust-1-whatsapp") is None
    kinds = [e.kind for e in await service.events(ids["wei"], ticket_id)]
    assert kinds == ["created", "routed", "claimed", "reassigned", "released", "routed", "claimed", "replied",
                     "handed_back"]


async def test_works_with_the_apps_bytes_mode_redis_client(sessions, redis_url: str, clock: FakeClock) -> None:
    raw = aioredis.Redis.from_url(redis_url)  # decode_responses=False, as bot/redis_conn.py makes it
    service = HandoffService(sessions, raw, clock=clock, router_min_idle_ms=0)
    ids = await setup_team(service)
    escalation = await escalate_german_chargeback(service)
    await service.queue.read("shenzhen", "router-dead")  # read, never acknowledged
    routed = await service.route_next("shenzhen", "router-2")
    assert [(r.ticket_id, r.agent_id, r.redelivered) for r in routed] == [(escalation.ticket["id"], ids["max"], True)]
    assert await service.queue.pending("shenzhen") == 0
    await raw.aclose()


async def test_escalation_inside_the_engines_transaction_is_queued_only_after_commit(
        service: HandoffService) -> None:
    ids = await setup_team(service)
    facts = EscalationFacts(parse=parse("Ich will sofort einen Menschen!", "de", "human"))
    async with service.sessions() as session:
        async with session.begin():
            # The engine's turn already wrote in this transaction (on SQLite: it holds the write lock).
            team = await service._team_by_name(session, "shenzhen")
            team.skills = ["refunds"]
            await session.flush()
            esc = await service.escalate(customer_id="c9", conversation_id="v9", channel="widget", language="de",
                                         triggers=evaluate_triggers(facts), facts=facts, session=session)
            assert await service.queue.length("shenzhen") == 0  # nothing routable before the commit
        # The after-commit hook queues it: wait for that, with a deadline.
        for _ in range(200):
            if await service.queue.length("shenzhen"):
                break
            await asyncio.sleep(0.05)
    routed = await service.route_next("shenzhen", "r")
    assert [(r.ticket_id, r.agent_id) for r in routed] == [(esc.ticket["id"], ids["max"])]
    ticket = await service.customer_wrote(esc.ticket["id"], "email")
    assert "email" in ticket.channels


async def test_rolled_back_escalation_leaves_nothing_behind(service: HandoffService) -> None:
    await setup_team(service)
    facts = EscalationFacts(parse=parse("Ich will einen Menschen!", "de", "human"))
    async with service.sessions() as session:
        async with session.begin():
            await service.escalate(customer_id="c9", conversation_id="v9", channel="widget", language="de",
                                   triggers=evaluate_triggers(facts), facts=facts, session=session)
            await session.rollback()
    await asyncio.sleep(0.1)
    assert await service.queue.length("shenzhen") == 0
    assert await service.open_ticket_for_conversation("v9") is None


async def test_two_routers_racing_over_waiting_tickets_route_each_once(service: HandoffService) -> None:
    await service.create_team("eu", languages=["en"])
    agents = [await service.create_agent(f"a{i}", "pw", "eu", languages=["en"], max_open_threads=10)
              for i in range(3)]
    facts = EscalationFacts(parse=parse("human please", "en", "human"))
    ids = []
    for n in range(6):
        esc = await service.escalate(customer_id=f"c{n}", conversation_id=f"v{n}", channel="widget",
                                     language="en", triggers=evaluate_triggers(facts), facts=facts, team="eu")
        ids.append(esc.ticket["id"])
    await service.route_next("eu", "r")  # nobody online yet: all wait
    for agent in agents:
        await service.presence.heartbeat("eu", agent.id, service.clock.now())
    await asyncio.gather(service.route_waiting("eu"), service.route_waiting("eu"))
    lead = await service.create_agent("lead", "pw", "eu", roles=["lead"], languages=["en"])
    for ticket_id in ids:
        routed = [e for e in await service.events(lead.id, ticket_id) if e.kind == "routed" and e.agent_id]
        assert len(routed) == 1
    loads = [len(await service.tickets_for(a.id)) for a in agents]
    assert sum(loads) == 6  # every ticket has exactly one agent


async def test_a_p1_is_routed_before_older_p3_tickets_waiting_in_the_stream(service: HandoffService) -> None:
    await service.create_team("eu", languages=["en"])
    agent = await service.create_agent("ana", "pw", "eu", languages=["en"], max_open_threads=1)
    await service.heartbeat(agent.id)
    calm = EscalationFacts(parse=parse("can I talk to someone", "en", "human"))
    threat = EscalationFacts(parse=parse("I am calling my lawyer", "en", "threat"))
    p3 = await service.escalate(customer_id="a", conversation_id="a", channel="widget", language="en",
                                triggers=evaluate_triggers(calm), facts=calm, team="eu")
    p1 = await service.escalate(customer_id="b", conversation_id="b", channel="email", language="en",
                                triggers=evaluate_triggers(threat), facts=threat, team="eu")
    routed = {r.ticket_id: r.agent_id for r in await service.route_next("eu", "r")}
    assert routed == {p1.ticket["id"]: agent.id, p3.ticket["id"]: None}


async def test_unclaimed_ticket_moves_on_when_the_agents_browser_dies(
        service: HandoffService, clock: FakeClock) -> None:
    ids = await setup_team(service)
    await service.create_agent("jonas", "pw", "shenzhen", languages=["de"])
    first = await escalate_german_chargeback(service, customer="c1")
    second = await escalate_german_chargeback(service, customer="c2")
    routed = await service.route_next("shenzhen", "r")
    assert {r.agent_id for r in routed} == {ids["max"]}
    await service.claim(ids["max"], second.ticket["id"])
    # Max's browser crashes: no more heartbeats. A minute later Jonas is online and the sweep runs.
    clock.advance(timedelta(seconds=61))
    jonas = await service.authenticate("jonas", "pw")
    assert jonas is not None
    await service.presence.heartbeat("shenzhen", jonas.id, clock.now())
    await service.route_waiting("shenzhen")
    assert (await service.ticket(jonas.id, first.ticket["id"])).agent_id == jonas.id
    # What Max had claimed stays his (he owns that conversation; a lead can reassign it).
    assert (await service.ticket(ids["max"], second.ticket["id"])).agent_id == ids["max"]
    kinds = [e.kind for e in await service.events(ids["wei"], first.ticket["id"])]
    assert kinds == ["created", "routed", "released", "routed"]


async def test_a_team_with_an_unknown_time_zone_is_refused(service: HandoffService) -> None:
    with pytest.raises(ValueError, match="IANA"):
        await service.create_team("mars", timezone="Mars/Olympus")
    assert await service.teams() == []
