"""Tickets carry the shopper's region (the order's destination, else their phone number's country, mapped
to the project's regions), and routing gives them only to agents who work that region."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from actions.demo_store import DEMO_STORE_DIR, DemoStore, load_demo_store
from actions.models import StoreBase
from actions.seller import SellerProfile
from bot.engine import CustomerFacts, Rendered
from bot.handoff_desk import HandoffDesk
from bot.store.models import Conversation, Message
from handoff.config import load_handoff_config, phone_country
from handoff.service import HandoffService, NotAllowed
from handoff.triggers import Trigger
from tests.handoff.conftest import SHENZHEN_HOURS
from tests.handoff.helpers import parse

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "demo-store"
FRENCH_ORDER = "ND-100105"  # ships to Paris (store/orders.json)


class Responses:
    def render(self, name: str, language: str, **variables: Any) -> Rendered:
        return Rendered(name)

    def __contains__(self, name: object) -> bool:
        return True


class Events:
    async def publish_console(self, event: dict[str, Any]) -> None:
        return None


@pytest.fixture
async def desk(sessions: async_sessionmaker[AsyncSession], service: HandoffService) -> AsyncIterator[HandoffDesk]:
    engine = sessions.kw["bind"]
    async with engine.begin() as conn:
        await conn.run_sync(StoreBase.metadata.create_all)
    await load_demo_store(sessions)
    store = DemoStore(sessions, SellerProfile.load(DEMO_STORE_DIR / "seller.yml"))
    yield HandoffDesk(service, Responses(), Events(), ["en", "de"],  # type: ignore[arg-type]
                      config=load_handoff_config(PROJECT / "handoff.yml"), store=store)


async def regional_team(service: HandoffService) -> dict[str, int]:
    await service.create_team("support", timezone="Asia/Shanghai", hours=SHENZHEN_HOURS, languages=["en"])
    ids = {}
    for login, regions in (("elena", ["EU"]), ("nate", ["NA"])):
        agent = await service.create_agent(login, "pw-" + login, "support", languages=["en"], regions=regions)
        ids[login] = agent.id
        await service.heartbeat(agent.id)
    return ids


async def escalate(desk: HandoffDesk, sessions: async_sessionmaker[AsyncSession], conversation_id: int,
                   slots: dict[str, Any], phones: list[str]) -> dict[str, Any]:
    conversation = Conversation(id=conversation_id, channel="widget", state={})
    async with sessions() as session, session.begin():
        escalation = await desk.escalate(
            session, conversation, Message(text="I want a person", payload={}), parse("I want a person", "en", "human"),
            [Trigger("human_request", "asked for a person", "P3").to_dict()], "en",
            CustomerFacts(conversation_id, [], phones, "Chloé"), {"slots": slots})
    return escalation.trace


async def test_an_eu_agent_gets_the_ticket_of_a_shopper_whose_order_ships_to_france(
        desk: HandoffDesk, service: HandoffService, sessions: async_sessionmaker[AsyncSession]) -> None:
    ids = await regional_team(service)
    trace = await escalate(desk, sessions, 1, {"verified_order": FRENCH_ORDER}, phones=["+12125550100"])
    ticket_id = trace["ticket_id"]
    assert (await service.ticket(ids["elena"], ticket_id)).region == "EU"  # the order wins over the US phone
    routed = await service.route_next("support", "router-1")
    assert [(r.ticket_id, r.agent_id) for r in routed] == [(ticket_id, ids["elena"])]
    assert await service.tickets_for(ids["nate"]) == []
    with pytest.raises(NotAllowed):
        await service.claim(ids["nate"], ticket_id)


async def test_without_an_order_the_phone_numbers_country_decides(
        desk: HandoffDesk, service: HandoffService, sessions: async_sessionmaker[AsyncSession]) -> None:
    ids = await regional_team(service)
    trace = await escalate(desk, sessions, 2, {}, phones=["+12125550100"])
    routed = await service.route_next("support", "router-1")
    assert [(r.ticket_id, r.agent_id) for r in routed] == [(trace["ticket_id"], ids["nate"])]
    assert (await service.ticket(ids["nate"], trace["ticket_id"])).region == "NA"
    assert await service.tickets_for(ids["elena"]) == []


async def test_a_shopper_of_no_known_region_goes_to_agents_without_a_region_only(
        desk: HandoffDesk, service: HandoffService, sessions: async_sessionmaker[AsyncSession]) -> None:
    ids = await regional_team(service)
    anyone = await service.create_agent("ana", "pw-ana", "support", languages=["en"])
    await service.heartbeat(anyone.id)
    trace = await escalate(desk, sessions, 3, {}, phones=["+5511987654321"])  # São Paulo
    assert (await service.ticket(anyone.id, trace["ticket_id"])).region == "BR"
    routed = await service.route_next("support", "router-1")
    assert [(r.ticket_id, r.agent_id) for r in routed] == [(trace["ticket_id"], anyone.id)]
    assert ids  # elena (EU) and nate (NA) were eligible by language but not by region


def test_phone_country() -> None:
    assert phone_country("+4915112345678") == "DE"
    assert phone_country("8613800138000") == "CN"  # WhatsApp ids come without the +
    assert phone_country("not a number") is None
