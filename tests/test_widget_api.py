"""The widget's wire protocol against the real server: sessions, WebSocket, long-poll, offline email.

Runs once on SQLite and once on PostgreSQL, with the suite's real Redis.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import create_async_engine

from bot.channels.widget import MESSAGES_PER_MINUTE
from bot.store.models import Conversation, Customer, DecisionTrace, Message
from tests.browser.conftest import NightdeskServer, greeting_texts
from tests.servers import PostgresServer, RedisServer

REPLY_TIMEOUT_S = 60.0


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, redis_server: RedisServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[NightdeskServer]:
    var_dir = tmp_path_factory.mktemp(f"widget-api-{request.param}")
    database_url = None
    if request.param == "postgres":
        pg: PostgresServer = request.getfixturevalue("postgres_server")
        database_url = pg.create_database("w_" + uuid.uuid4().hex[:12])
    nightdesk = NightdeskServer(var_dir, redis_server.url, database_url=database_url).start()
    yield nightdesk
    nightdesk.stop()


@pytest.fixture
async def client(server: NightdeskServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=REPLY_TIMEOUT_S) as http:
        yield http


async def query(server: NightdeskServer, statement: Any) -> list[Any]:
    """Read what the server stored, straight from its database."""
    engine = create_async_engine(server.effective_database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(statement)).all())
    finally:
        await engine.dispose()


async def new_session(client: httpx.AsyncClient, token: str | None = None, locale: str = "en-US",
                      timezone: str = "America/New_York") -> dict[str, Any]:
    response = await client.post("/api/v1/widget/session",
                                 json={"session_token": token, "locale": locale, "timezone": timezone})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def socket_url(server: NightdeskServer, token: str, after: int = 0) -> str:
    return f"{server.ws_url}/ws/widget?token={token}&after={after}"


async def frames_until(ws: Any, done: Any, timeout: float = REPLY_TIMEOUT_S) -> list[dict[str, Any]]:
    """Collect frames until `done(frames)` is true."""
    frames: list[dict[str, Any]] = []

    async def collect() -> None:
        while not done(frames):
            frames.append(json.loads(await ws.recv()))

    await asyncio.wait_for(collect(), timeout)
    return frames


def replies(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f["message"] for f in frames if f["type"] == "message" and f["message"]["direction"] == "out"]


async def test_new_session_gets_a_secret_token_and_a_known_token_resumes(client: httpx.AsyncClient) -> None:
    first = await new_session(client)
    other = await new_session(client)
    assert len(first["session_token"]) >= 40
    assert first["session_token"] != other["session_token"]
    assert first["conversation_id"] != other["conversation_id"]
    assert first["history"] == [] and first["max_length"] >= 10
    resumed = await new_session(client, first["session_token"])
    assert resumed["session_token"] == first["session_token"]
    assert resumed["conversation_id"] == first["conversation_id"]


async def test_a_message_is_acked_stored_and_answered_over_the_websocket(
    server: NightdeskServer, client: httpx.AsyncClient
) -> None:
    session = await new_session(client, locale="de-DE", timezone="Europe/Berlin")
    async with websockets.connect(socket_url(server, session["session_token"])) as ws:
        await ws.send(json.dumps({"type": "message", "client_id": "c-1", "text": "Hallo!"}))
        frames = await frames_until(ws, lambda fs: bool(replies(fs)))
    ack = next(f for f in frames if f["type"] == "ack")
    assert ack["client_id"] == "c-1"
    assert ack["message"]["text"] == "Hallo!" and ack["message"]["direction"] == "in"
    assert ack["message"]["conversation_id"] == session["conversation_id"]
    reply = replies(frames)[0]
    assert reply["text"] in greeting_texts()
    kinds = [f["type"] for f in frames]
    # The typing indicator comes before the reply (the shopper's own message may come back first, as it does to
    # the conversation's other tabs: how it interleaves with the typing frame depends on timing).
    first_reply = next(i for i, f in enumerate(frames) if f["type"] == "message" and f["message"]["direction"] == "out")
    assert "typing" in kinds and kinds.index("typing") < first_reply
    typing = [f["on"] for f in frames if f["type"] == "typing"]
    assert typing[0] is True

    [(payload, timezone)] = await query(server, select(Message.payload, Conversation.timezone).join(
        Conversation, Conversation.id == Message.conversation_id).where(Message.id == ack["message"]["id"]))
    assert payload["locale_hint"] == "de-DE"
    assert payload["timezone_hint"] == "Europe/Berlin"
    assert timezone == "Europe/Berlin"

    history = (await new_session(client, session["session_token"]))["history"]
    assert [m["id"] for m in history][:2] == [ack["message"]["id"], reply["id"]]


async def test_a_resend_after_reconnect_is_stored_and_answered_once(
    server: NightdeskServer, client: httpx.AsyncClient
) -> None:
    session = await new_session(client)
    token = session["session_token"]
    frame = json.dumps({"type": "message", "client_id": "resend-1", "text": "Hello!"})
    async with websockets.connect(socket_url(server, token)) as ws:
        await ws.send(frame)
        first = await frames_until(ws, lambda fs: any(f["type"] == "ack" for f in fs))
    # The browser did not see the ack (connection dropped): it sends the same client_id again.
    async with websockets.connect(socket_url(server, token)) as ws:
        await ws.send(frame)
        second = await frames_until(ws, lambda fs: any(f["type"] == "ack" for f in fs) and bool(replies(fs)))
    first_ack = next(f for f in first if f["type"] == "ack")
    second_ack = next(f for f in second if f["type"] == "ack")
    assert second_ack["message"]["id"] == first_ack["message"]["id"]

    conversation = session["conversation_id"]
    [(inbound,)] = await query(server, select(func.count()).select_from(Message).where(
        Message.conversation_id == conversation, Message.direction == "in"))
    [(turns,)] = await query(server, select(func.count()).select_from(DecisionTrace).where(
        DecisionTrace.conversation_id == conversation))
    assert (inbound, turns) == (1, 1)
    reply_ids = {m["id"] for m in replies(second)}
    [(outbound,)] = await query(server, select(func.count()).select_from(Message).where(
        Message.conversation_id == conversation, Message.direction == "out"))
    assert outbound == len(reply_ids)


async def test_reconnecting_resends_what_was_missed(server: NightdeskServer, client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    token = session["session_token"]
    # Sent from another tab (long-poll) while this page had no connection.
    sent = await client.post("/api/v1/widget/messages", json={"token": token, "client_id": "tab2-1", "text": "Hi"})
    assert sent.status_code == 200, sent.text
    inbound_id = sent.json()["message"]["id"]
    answered = await client.get("/api/v1/widget/messages", params={"token": token, "after": inbound_id, "wait": 25})
    while not answered.json()["messages"]:
        answered = await client.get("/api/v1/widget/messages",
                                    params={"token": token, "after": inbound_id, "wait": 25})
    reply_id = answered.json()["messages"][0]["id"]

    async with websockets.connect(socket_url(server, token, after=0)) as ws:
        frames = await frames_until(ws, lambda fs: reply_id in {f["message"]["id"] for f in fs
                                                               if f["type"] == "message"})
    resent = [f["message"]["id"] for f in frames if f["type"] == "message"]
    assert resent[:2] == [inbound_id, reply_id]


async def test_long_poll_waits_for_the_reply(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    token = session["session_token"]
    poll = asyncio.create_task(client.get("/api/v1/widget/messages", params={"token": token, "after": 0, "wait": 25}))
    sent = await client.post("/api/v1/widget/messages", json={"token": token, "client_id": "lp-1", "text": "Hello!"})
    assert sent.json()["duplicate"] is False
    got = (await poll).json()["messages"]
    # The poll that was waiting wakes for the shopper's own message (the other tabs' view of it) ...
    assert [m["text"] for m in got][:1] == ["Hello!"]
    # ... and a poll after it waits for the bot's reply and returns it.
    inbound_id = sent.json()["message"]["id"]
    replies: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while not replies and time.monotonic() < deadline:  # a poll may also end early, on a non-message event
        replies = (await client.get("/api/v1/widget/messages",
                                    params={"token": token, "after": inbound_id, "wait": 25})).json()["messages"]
    assert replies and replies[0]["direction"] == "out", replies
    assert replies[0]["text"] in greeting_texts()

    again = await client.post("/api/v1/widget/messages", json={"token": token, "client_id": "lp-1", "text": "Hello!"})
    assert again.json()["duplicate"] is True
    assert again.json()["message"]["id"] == sent.json()["message"]["id"]


async def test_too_long_or_empty_messages_are_refused_with_a_clear_notice(
    server: NightdeskServer, client: httpx.AsyncClient
) -> None:
    session = await new_session(client)
    token, limit = session["session_token"], session["max_length"]
    async with websockets.connect(socket_url(server, token)) as ws:
        await ws.send(json.dumps({"type": "message", "client_id": "long-1", "text": "x" * (limit + 1)}))
        await ws.send(json.dumps({"type": "message", "client_id": "empty-1", "text": "   "}))
        frames = await frames_until(ws, lambda fs: len([f for f in fs if f["type"] == "error"]) == 2)
    errors = {f["client_id"]: f for f in frames if f["type"] == "error"}
    assert errors["long-1"]["code"] == "too_long"
    assert f"{limit:,}" in errors["long-1"]["detail"] and "shorten" in errors["long-1"]["detail"]
    assert errors["empty-1"]["code"] == "empty"

    refused = await client.post("/api/v1/widget/messages",
                                json={"token": token, "client_id": "long-2", "text": "x" * (limit + 1)})
    assert refused.status_code == 422 and "limit" in refused.json()["detail"]
    [(stored,)] = await query(server, select(func.count()).select_from(Message).where(
        Message.conversation_id == session["conversation_id"]))
    assert stored == 0


async def test_offline_email_is_validated_and_stored_on_the_customer(
    server: NightdeskServer, client: httpx.AsyncClient
) -> None:
    token = (await new_session(client))["session_token"]
    bad = await client.post("/api/v1/widget/email", json={"token": token, "email": "shopper at example"},
                            headers={"Origin": "https://shop.example"})
    assert bad.status_code == 422
    assert "email address" in bad.json()["detail"]
    # The shop's page (another origin) must be able to read the error to show it.
    assert bad.headers.get("access-control-allow-origin") in ("*", "https://shop.example")
    good = await client.post("/api/v1/widget/email", json={"token": token, "email": "Night.Owl@Example.COM"})
    assert good.status_code == 200 and good.json()["email"] == "Night.Owl@example.com"
    emails = await query(server, select(Customer.email).where(Customer.email == "Night.Owl@example.com"))
    assert emails == [("Night.Owl@example.com",)]
    unknown = await client.post("/api/v1/widget/email", json={"token": "nope", "email": "a@example.com"})
    assert unknown.status_code == 401


async def test_an_unknown_token_is_told_to_start_a_new_session(
    server: NightdeskServer, client: httpx.AsyncClient
) -> None:
    async with websockets.connect(socket_url(server, "not-a-session")) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    poll = await client.get("/api/v1/widget/messages", params={"token": "not-a-session", "after": 0, "wait": 0})
    assert poll.status_code == 401 and "session" in poll.json()["detail"]


async def test_the_snippet_and_the_demo_storefront_are_served(client: httpx.AsyncClient, server: NightdeskServer) -> None:
    script = await client.get("/widget.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    for path in ("/", "/demo"):
        page = await client.get(path)
        assert page.status_code == 200
        assert f'src="{server.url}/widget.js"' in page.text
        assert f'data-nightdesk-url="{server.url}"' in page.text
    # The snippet runs on the seller's own domain: the API must accept cross-origin calls.
    preflight = await client.options("/api/v1/widget/session", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code in (200, 204)
    assert preflight.headers.get("access-control-allow-origin") in ("*", "https://shop.example")
    cross = await client.post("/api/v1/widget/session", json={"locale": "en"}, headers={"Origin": "https://shop.example"})
    assert cross.headers.get("access-control-allow-origin") in ("*", "https://shop.example")


async def test_replies_shown_in_the_widget_are_marked_delivered_then_read(
    server: NightdeskServer, client: httpx.AsyncClient
) -> None:
    token = (await new_session(client))["session_token"]
    async with websockets.connect(socket_url(server, token)) as ws:
        await ws.send(json.dumps({"type": "message", "client_id": "r-1", "text": "Hello!"}))
        reply_id = replies(await frames_until(ws, lambda fs: bool(replies(fs))))[0]["id"]
        # The chat panel is closed: the reply reached the browser but nobody has seen it yet.
        await ws.send(json.dumps({"type": "receipt", "up_to": reply_id, "status": "delivered"}))
        await until_status(server, reply_id, "delivered")
        # The shopper opens the panel.
        await ws.send(json.dumps({"type": "receipt", "up_to": reply_id, "status": "read"}))
        await until_status(server, reply_id, "read")
    # Receipts never go backwards.
    stale = await client.post("/api/v1/widget/receipt", json={"token": token, "up_to": reply_id, "status": "delivered"})
    assert stale.json() == {"updated": 0}
    await until_status(server, reply_id, "read")


async def test_a_receipt_that_arrives_while_the_reply_is_still_being_sent_is_kept(
    server: NightdeskServer, client: httpx.AsyncClient
) -> None:
    token = (await new_session(client))["session_token"]
    async with websockets.connect(socket_url(server, token)) as ws:
        await ws.send(json.dumps({"type": "message", "client_id": "s-1", "text": "Hello!"}))
        reply_id = replies(await frames_until(ws, lambda fs: bool(replies(fs))))[0]["id"]
    await until_status(server, reply_id, "sent")
    # Put the reply back where it is while the sender works: shown in the browser, not yet stored as sent.
    engine = create_async_engine(server.effective_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(update(Message).where(Message.id == reply_id).values(status="sending", external_id=None))
    finally:
        await engine.dispose()
    receipt = await client.post("/api/v1/widget/receipt", json={"token": token, "up_to": reply_id, "status": "delivered"})
    assert receipt.json() == {"updated": 1}
    await until_status(server, reply_id, "delivered")


async def until_status(server: NightdeskServer, message_id: int, status: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    current = None
    while asyncio.get_running_loop().time() < deadline:
        [(current,)] = await query(server, select(Message.status).where(Message.id == message_id))
        if current == status:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"message {message_id} is {current!r}, expected {status!r}")


async def test_after_the_conversation_is_closed_the_next_message_opens_a_new_one_on_the_same_socket(
    server: NightdeskServer, client: httpx.AsyncClient
) -> None:
    session = await new_session(client)
    token, first_conversation = session["session_token"], session["conversation_id"]
    async with websockets.connect(socket_url(server, token)) as ws:
        await ws.send(json.dumps({"type": "message", "client_id": "k-1", "text": "Hello!"}))
        await frames_until(ws, lambda fs: bool(replies(fs)))
        # An agent resolves the conversation (as the console does).
        engine = create_async_engine(server.effective_database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(update(Conversation).where(Conversation.id == first_conversation)
                                   .values(status="closed"))
        finally:
            await engine.dispose()
        await ws.send(json.dumps({"type": "message", "client_id": "k-2", "text": "Hello again!"}))
        frames = await frames_until(ws, lambda fs: any(f["type"] == "ack" for f in fs) and any(
            r["conversation_id"] != first_conversation for r in replies(fs)))
    ack = next(f for f in frames if f["type"] == "ack")
    assert ack["message"]["conversation_id"] != first_conversation
    history = (await new_session(client, token))["history"]
    assert [m["text"] for m in history if m["direction"] == "in"] == ["Hello!", "Hello again!"]


async def test_one_session_cannot_flood_the_bot(client: httpx.AsyncClient) -> None:
    token = (await new_session(client))["session_token"]
    statuses = []
    for i in range(MESSAGES_PER_MINUTE + 1):
        sent = await client.post("/api/v1/widget/messages", json={"token": token, "client_id": f"f-{i}", "text": f"#{i}"})
        statuses.append(sent.status_code)
    assert statuses == [200] * MESSAGES_PER_MINUTE + [429]
    assert "wait a minute" in sent.json()["detail"]
    # Another shopper is not affected.
    other = (await new_session(client))["session_token"]
    ok = await client.post("/api/v1/widget/messages", json={"token": other, "client_id": "o-1", "text": "Hello!"})
    assert ok.status_code == 200
