"""A Rasa REST client talks to Nightdesk unchanged: POST /webhooks/rest/webhook, replies in the response."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from bot.channels.rest import reply_json
from bot.store.models import ChannelIdentity, Conversation, Message
from tests.browser.conftest import NightdeskServer, germany_standard_days, greeting_texts
from tests.servers import PostgresServer, RedisServer

WEBHOOK = "/webhooks/rest/webhook"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, redis_server: RedisServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[NightdeskServer]:
    database_url = None
    if request.param == "postgres":
        pg: PostgresServer = request.getfixturevalue("postgres_server")
        database_url = pg.create_database("r_" + uuid.uuid4().hex[:12])
    nightdesk = NightdeskServer(tmp_path_factory.mktemp(f"rest-{request.param}"), redis_server.url,
                                database_url=database_url).start()
    yield nightdesk
    nightdesk.stop()


@pytest.fixture
async def client(server: NightdeskServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        yield http


async def test_a_greeting_gets_the_bots_greeting_in_rasas_format(client: httpx.AsyncClient) -> None:
    sender = f"rasa-user-{uuid.uuid4().hex[:8]}"
    response = await client.post(WEBHOOK, json={"sender": sender, "message": "hello"})
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list) and body
    assert body[0]["recipient_id"] == sender
    assert body[0]["text"] in greeting_texts()


async def test_a_question_gets_the_shops_answer_and_the_conversation_continues(
    server: NightdeskServer, client: httpx.AsyncClient
) -> None:
    sender = f"rasa-user-{uuid.uuid4().hex[:8]}"
    await client.post(WEBHOOK, json={"sender": sender, "message": "hi"})
    response = await client.post(WEBHOOK, json={"sender": sender, "message": "How long does shipping to Germany take?"})
    texts = [r["text"] for r in response.json()]
    low, high = germany_standard_days()
    assert any(re.search(rf"\b{low}\s*[–-]\s*{high}\b", t) for t in texts), texts

    engine = create_async_engine(server.effective_database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(
                select(Message.conversation_id, Message.direction, Message.text)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
                .where(ChannelIdentity.channel == "rest", ChannelIdentity.address == sender)
                .order_by(Message.id)
            )).all()
    finally:
        await engine.dispose()
    assert len({r.conversation_id for r in rows}) == 1
    assert [r.text for r in rows if r.direction == "in"] == ["hi", "How long does shipping to Germany take?"]
    assert texts == [r.text for r in rows if r.direction == "out"][-len(texts):]


async def test_replies_are_delivered_only_when_the_response_carries_them(
    server: NightdeskServer, client: httpx.AsyncClient
) -> None:
    from bot.channels.base import OutboundMessage
    from bot.channels.rest import RestChannel

    sender = f"rasa-user-{uuid.uuid4().hex[:8]}"
    body = (await client.post(WEBHOOK, json={"sender": sender, "message": "hello"})).json()
    assert body
    engine = create_async_engine(server.effective_database_url)
    try:
        async with engine.connect() as conn:
            statuses = (await conn.execute(
                select(Message.status)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
                .where(ChannelIdentity.channel == "rest", ChannelIdentity.address == sender,
                       Message.direction == "out")
            )).scalars().all()
    finally:
        await engine.dispose()
    assert statuses and set(statuses) == {"delivered"}
    # Sending alone (an agent's reply, or one the client stopped waiting for) reaches nobody yet.
    sent = await RestChannel().send(OutboundMessage(message_id=1, conversation_id=1, channel="rest", recipient=sender,
                                                    text="An agent here"))
    assert sent.status == "sent"


@pytest.mark.parametrize(("body", "content_type", "hint"), [
    (b"this is not json", "application/json", "JSON"),
    (b'["sender", "message"]', "application/json", "object"),
    (b'{"sender": "u-1"}', "application/json", '"message"'),
    (b'{"sender": "u-1", "message": 42}', "application/json", '"message"'),
    (b'{"sender": "u-1", "message": "   "}', "application/json", "empty"),
    (b'{"sender": {"id": 1}, "message": "hi"}', "application/json", '"sender"'),
])
async def test_bad_payloads_get_400_with_a_clear_error(
    client: httpx.AsyncClient, body: bytes, content_type: str, hint: str
) -> None:
    response = await client.post(WEBHOOK, content=body, headers={"content-type": content_type})
    assert response.status_code == 400
    assert hint in response.json()["detail"]


def test_quick_replies_go_out_as_rasa_buttons() -> None:
    message = Message(text="Which of these do you mean?", payload={
        "quick_replies": [{"title": "Returns", "payload": "/kb:returns"}, {"title": "Something else",
                                                                            "payload": "/out_of_scope"}],
        "attachments": []})
    assert reply_json("u-1", message) == {
        "recipient_id": "u-1",
        "text": "Which of these do you mean?",
        "buttons": [{"title": "Returns", "payload": "/kb:returns"},
                    {"title": "Something else", "payload": "/out_of_scope"}],
    }
