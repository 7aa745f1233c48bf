"""WhatsApp wire format: what Meta sends is understood, what Nightdesk sends is what the Cloud API accepts.

Sending runs against the fake Graph API (its own 24-hour window, rate limits, token expiry) and real Redis.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from bot.channels.base import OutboundMessage, QuickReply, SendError
from bot.channels.whatsapp import (
    ALERTS_KEY,
    WhatsAppChannel,
    WhatsAppConfig,
    WhatsAppPayloadError,
    parse_webhook,
    sign,
    verify_signature,
)
from tests.fakes.meta_graph import FakeMetaGraph

SHOPPER = "4915112345678"


def test_signature_is_checked_over_the_raw_body() -> None:
    raw = b'{"object":"whatsapp_business_account","entry":[]}'
    good = sign(raw, "s3cret")
    assert verify_signature(raw, good, "s3cret")
    assert not verify_signature(raw, good, "other-secret")
    assert not verify_signature(raw + b" ", good, "s3cret")  # re-serialised JSON is a different body
    assert not verify_signature(raw, None, "s3cret")
    assert not verify_signature(raw, good.removeprefix("sha256="), "s3cret")


def test_text_message_with_contact_name(meta_graph: FakeMetaGraph) -> None:
    body = meta_graph.user_message(SHOPPER, text="Where is my order 1042?", name="Lena")
    parsed = parse_webhook(body)
    [msg] = parsed.messages
    assert msg.channel == "whatsapp" and msg.sender == SHOPPER and msg.sender_name == "Lena"
    assert msg.text == "Where is my order 1042?"
    assert msg.external_id.startswith("wamid.")
    assert parsed.phone_number_ids == {meta_graph.phone_number_id}


@pytest.mark.parametrize(("number", "zone"), [
    (SHOPPER, "Europe/Berlin"), ("12015595149", "America/New_York"), ("393123459837", "Europe/Rome"),
    ("819012345678", "Asia/Tokyo"),
    ("61412345678", None),  # an Australian mobile: four clocks
    ("447700900123", None),  # a British mobile: phonenumbers knows no zone
])
def test_the_shoppers_time_zone_comes_from_the_number_when_it_has_one_clock(
        meta_graph: FakeMetaGraph, number: str, zone: str | None) -> None:
    [msg] = parse_webhook(meta_graph.user_message(number, text="hello")).messages
    assert msg.timezone_hint == zone


@pytest.mark.parametrize(("number", "language"), [
    (SHOPPER, "de"), ("34612345678", "es"), ("12015595149", "en"), ("819012345678", "ja"), ("5511987654321", "pt"),
    ("41791234567", None),  # Switzerland: four languages
    ("15145551234", None),  # Canada: English and French
])
def test_the_shoppers_language_hint_comes_from_the_numbers_country(
        meta_graph: FakeMetaGraph, number: str, language: str | None) -> None:
    [msg] = parse_webhook(meta_graph.user_message(number, text="hola")).messages
    assert msg.locale_hint == language


def test_button_and_list_replies_carry_their_payload(meta_graph: FakeMetaGraph) -> None:
    button = meta_graph.user_message(SHOPPER, kind="interactive", content={
        "type": "button_reply", "button_reply": {"id": "track_order", "title": "Track order"}})
    listed = meta_graph.user_message(SHOPPER, kind="interactive", content={
        "type": "list_reply", "list_reply": {"id": "return_item", "title": "Return an item",
                                             "description": "start a return"}})
    [b] = parse_webhook(button).messages
    [li] = parse_webhook(listed).messages
    assert (b.payload, b.text) == ("track_order", "Track order")
    assert (li.payload, li.text) == ("return_item", "Return an item")


def test_media_and_location_become_attachments_flagged_unreadable(meta_graph: FakeMetaGraph) -> None:
    image = meta_graph.user_message(SHOPPER, kind="image", content={
        "id": "MEDIA1", "mime_type": "image/jpeg", "sha256": "abc", "caption": "the box arrived broken"})
    doc = meta_graph.user_message(SHOPPER, kind="document", content={
        "id": "MEDIA2", "mime_type": "application/pdf", "filename": "invoice.pdf"})
    audio = meta_graph.user_message(SHOPPER, kind="audio", content={
        "id": "MEDIA3", "mime_type": "audio/ogg; codecs=opus", "voice": True})
    loc = meta_graph.user_message(SHOPPER, kind="location", content={
        "latitude": 52.52, "longitude": 13.405, "name": "Packstation 123", "address": "Berlin"})
    [im] = parse_webhook(image).messages
    assert im.attachments[0].kind == "image" and im.attachments[0].media_id == "MEDIA1"
    assert im.text == "the box arrived broken" and im.metadata["unreadable"] == ["image"]
    [d] = parse_webhook(doc).messages
    assert d.attachments[0].filename == "invoice.pdf" and d.text == ""
    [a] = parse_webhook(audio).messages
    assert a.attachments[0].kind == "audio" and a.metadata["unreadable"] == ["audio"]
    [lo] = parse_webhook(loc).messages
    assert lo.attachments[0].kind == "location"
    assert lo.attachments[0].extra["latitude"] == 52.52 and "Packstation 123" in lo.text
    assert "unreadable" not in lo.metadata


def test_status_events_carry_the_failure(meta_graph: FakeMetaGraph) -> None:
    body = meta_graph.status_event("wamid.OUT1", "failed", SHOPPER, error=(131026, "Message undeliverable"))
    [st] = parse_webhook(body).statuses
    assert (st.external_id, st.status, st.error_code) == ("wamid.OUT1", "failed", 131026)
    assert st.error is not None and "Message undeliverable" in st.error


@pytest.mark.parametrize("body, where", [
    ({"object": "page", "entry": []}, "object"),
    ({"object": "whatsapp_business_account"}, "missing 'entry'"),
    ({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
        "messages": [{"id": "wamid.X", "type": "text", "text": {"body": "hi"}}]}}]}]}, "missing 'from'"),
    ({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
        "messages": [{"id": "wamid.X", "from": "1", "type": "text", "text": {}}]}}]}]}, "text: missing 'body'"),
])
def test_malformed_payload_says_what_is_wrong(body: dict, where: str) -> None:
    with pytest.raises(WhatsAppPayloadError, match=where):
        parse_webhook(body)


# ---------------------------------------------------------------- sending against the fake Graph API


def _channel(fake: FakeMetaGraph, redis: aioredis.Redis, clock=None, template: str = "order_followup"
             ) -> WhatsAppChannel:
    config = WhatsAppConfig(phone_number_id=fake.phone_number_id, access_token=fake.access_token,
                            graph_base_url=fake.base_url, api_version=fake.version,
                            template_name=template, template_language="en_US")
    return WhatsAppChannel(config, redis, clock=clock or fake.now)


def _out(text: str, replies: tuple[QuickReply, ...] = ()) -> OutboundMessage:
    return OutboundMessage(message_id=1, conversation_id=1, channel="whatsapp", recipient=SHOPPER,
                           text=text, quick_replies=replies)


async def _shopper_writes(fake: FakeMetaGraph, channel: WhatsAppChannel) -> None:
    [msg] = parse_webhook(fake.user_message(SHOPPER, text="hello")).messages
    await channel.note_inbound(msg.sender, msg.received_at)


async def test_reply_inside_the_window_is_free_text(meta_graph: FakeMetaGraph,
                                                    redis_client: aioredis.Redis) -> None:
    channel = _channel(meta_graph, redis_client)
    await _shopper_writes(meta_graph, channel)
    result = await channel.send(_out("Your parcel left Shenzhen yesterday."))
    [sent] = meta_graph.messages_to(SHOPPER)
    assert sent.type == "text" and sent.text == "Your parcel left Shenzhen yesterday."
    assert result.external_id == sent.wamid
    await channel.aclose()


async def test_a_markdown_answer_goes_out_in_whatsapps_own_marks(meta_graph: FakeMetaGraph,
                                                                 redis_client: aioredis.Redis) -> None:
    channel = _channel(meta_graph, redis_client)
    await _shopper_writes(meta_graph, channel)
    await channel.send(_out("Returns within **30 days**: open *Account → Orders*.\n\n| To | Standard |\n|---|---|\n"
                            "| USA | 8–12 days |"))
    [sent] = meta_graph.messages_to(SHOPPER)
    assert sent.text == "Returns within *30 days*: open _Account → Orders_.\n\n• *USA*: Standard 8–12 days"
    await channel.aclose()


async def test_outside_the_window_the_template_goes_out(meta_graph: FakeMetaGraph,
                                                        redis_client: aioredis.Redis) -> None:
    channel = _channel(meta_graph, redis_client)
    await _shopper_writes(meta_graph, channel)
    meta_graph.advance(timedelta(hours=25))  # both clocks: the channel reads the fake's clock
    state = await channel.window(SHOPPER)
    assert not state.open and state.closes_at is not None
    await channel.send(_out("Your refund was approved."))
    [sent] = meta_graph.messages_to(SHOPPER)
    assert sent.type == "template"
    assert sent.body["template"] == {"name": "order_followup", "language": {"code": "en_US"}}
    assert not [r for r in meta_graph.rejected if r.get("type") == "text"]
    await channel.aclose()


async def test_meta_saying_the_window_closed_falls_back_to_the_template(meta_graph: FakeMetaGraph,
                                                                       redis_client: aioredis.Redis) -> None:
    # Our clock still believes the window is open; Meta's clock (131047) wins.
    real_now = meta_graph.now
    channel = _channel(meta_graph, redis_client, clock=lambda: real_now() - timedelta(hours=25))
    await _shopper_writes(meta_graph, channel)
    meta_graph.advance(timedelta(hours=25))
    await channel.send(_out("Your refund was approved."))
    assert [r["code"] for r in meta_graph.rejected] == [131047]
    [sent] = meta_graph.messages_to(SHOPPER)
    assert sent.type == "template"
    await channel.aclose()


async def test_no_template_configured_outside_the_window_is_a_clear_permanent_error(
        meta_graph: FakeMetaGraph, redis_client: aioredis.Redis) -> None:
    channel = _channel(meta_graph, redis_client, template="")
    with pytest.raises(SendError) as err:
        await channel.send(_out("hello?"))
    assert not err.value.retryable and "NIGHTDESK_WHATSAPP_TEMPLATE_NAME" in str(err.value)
    assert meta_graph.sent == []
    await channel.aclose()


async def test_quick_replies_become_buttons_or_a_list(meta_graph: FakeMetaGraph,
                                                     redis_client: aioredis.Redis) -> None:
    channel = _channel(meta_graph, redis_client)
    await _shopper_writes(meta_graph, channel)
    await channel.send(_out("Which order?", (QuickReply("Order 1042", "order:1042"),
                                             QuickReply("Order 1043", "order:1043"))))
    many = tuple(QuickReply(f"Colour option number {i}", f"colour:{i}") for i in range(6))
    await channel.send(_out("Which colour?", many))
    buttons, listed = meta_graph.messages_to(SHOPPER)
    assert buttons.body["interactive"]["type"] == "button"
    assert [b["reply"]["id"] for b in buttons.body["interactive"]["action"]["buttons"]] == [
        "order:1042", "order:1043"]
    assert listed.body["interactive"]["type"] == "list"
    rows = listed.body["interactive"]["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == [f"colour:{i}" for i in range(6)]
    assert listed.body["interactive"]["action"]["button"] == "Choose"
    await channel.aclose()


async def test_the_list_button_speaks_the_replys_language(meta_graph: FakeMetaGraph,
                                                          redis_client: aioredis.Redis) -> None:
    channel = _channel(meta_graph, redis_client)
    await _shopper_writes(meta_graph, channel)
    many = tuple(QuickReply(f"Farbe Nummer {i}", f"colour:{i}") for i in range(5))
    for language in ("de", "ja", "pt-BR", "sv"):
        await channel.send(replace(_out("Welche Farbe?", many), language=language))
    buttons = [m.body["interactive"]["action"]["button"] for m in meta_graph.messages_to(SHOPPER)]
    assert buttons == ["Auswählen", "選択する", "Escolher", "Choose"]  # no Swedish label: English
    await channel.aclose()


async def test_mark_as_read_reaches_meta(meta_graph: FakeMetaGraph, redis_client: aioredis.Redis) -> None:
    channel = _channel(meta_graph, redis_client)
    await channel.mark_read("wamid.IN0001")
    assert meta_graph.read_receipts == ["wamid.IN0001"]
    await channel.aclose()


async def test_rate_limits_are_retryable_with_a_delay(redis_client: aioredis.Redis) -> None:
    fake = FakeMetaGraph(pair_rate=(1, 6.0)).start()
    try:
        channel = _channel(fake, redis_client)
        await _shopper_writes(fake, channel)
        await channel.send(_out("first"))
        with pytest.raises(SendError) as err:
            await channel.send(_out("second, too soon"))
        assert err.value.retryable and err.value.code == "131056" and err.value.retry_after
        fake.advance(timedelta(seconds=7))
        await channel.send(_out("second, after waiting"))
        fake.fail_next(130429, title="Rate limit hit")
        with pytest.raises(SendError) as err2:
            await channel.send(_out("third"))
        assert err2.value.retryable and err2.value.code == "130429"
        assert [m.text for m in fake.messages_to(SHOPPER)] == ["first", "second, after waiting"]
        await channel.aclose()
    finally:
        fake.stop()


async def test_undeliverable_is_permanent(meta_graph: FakeMetaGraph, redis_client: aioredis.Redis) -> None:
    channel = _channel(meta_graph, redis_client)
    await _shopper_writes(meta_graph, channel)
    meta_graph.fail_next(131026, title="Message undeliverable")
    with pytest.raises(SendError) as err:
        await channel.send(_out("hi"))
    assert not err.value.retryable and err.value.code == "131026"
    await channel.aclose()


async def test_expired_token_alerts_the_operator(meta_graph: FakeMetaGraph,
                                                 redis_client: aioredis.Redis) -> None:
    channel = _channel(meta_graph, redis_client)
    await _shopper_writes(meta_graph, channel)
    meta_graph.expire_token()
    with pytest.raises(SendError) as err:
        await channel.send(_out("hi"))
    assert not err.value.retryable and err.value.code == "190"
    alerts = [json.loads(a) for a in await redis_client.lrange(ALERTS_KEY, 0, -1)]
    assert [a["kind"] for a in alerts] == ["whatsapp_token_expired"]
    assert "NIGHTDESK_WHATSAPP_ACCESS_TOKEN" in alerts[0]["message"]
    assert datetime.fromisoformat(alerts[0]["at"]).tzinfo == UTC
    await channel.aclose()
