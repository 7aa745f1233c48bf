"""Email wire format: what the shopper wrote is separated from quotes and signatures, robots get no answer,
threads are recognised, Amazon relay mail is channel "amazon", and replies carry correct headers."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from bot.channels.base import OutboundMessage, QuickReply
from bot.channels.email import (
    EmailChannel,
    EmailSettings,
    IgnoredMail,
    ParsedMail,
    html_to_text,
    parse_mail,
    strip_quotes_and_signature,
)
from tests.channels.mailtools import body_of, shopper_mail

SETTINGS = EmailSettings(smtp_host="127.0.0.1", shop_address="support@shop.test", shop_name="Lumen Home",
                         signature="Lumen Home support\nhttps://shop.test",
                         amazon_seller_address="seller@shop.test")


def _parse(mail: EmailMessage) -> ParsedMail:
    parsed = parse_mail(bytes(mail), SETTINGS)
    assert isinstance(parsed, ParsedMail), parsed
    return parsed


@pytest.mark.parametrize("quoted", [
    "On Mon, 3 Mar 2026 at 10:02, Lumen Home <support@shop.test> wrote:\n> Your order shipped.\n> -- \n> Lumen",
    "On Mon, 3 Mar 2026 at 10:02, Lumen Home Support Team <support@shop.test>\nwrote:\n> Your order shipped.",
    "Am 03.03.2026 um 10:02 schrieb Lumen Home <support@shop.test>:\n> Ihre Bestellung ist unterwegs.",
    "-----Original Message-----\nFrom: Lumen Home\nSent: Monday\nSubject: order\n\nYour order shipped.",
    "________________________________\nFrom: Lumen Home <support@shop.test>\nSent: Monday, March 3\n\nshipped",
    "> Your order shipped.\n> Tracking: 1Z999",
])
def test_quoted_original_is_not_part_of_the_new_text(quoted: str) -> None:
    body = f"Thanks, but it has not arrived yet.\nOrder 1042.\n\n{quoted}\n"
    assert strip_quotes_and_signature(body) == "Thanks, but it has not arrived yet.\nOrder 1042."


def test_signature_and_mobile_footer_are_stripped() -> None:
    assert strip_quotes_and_signature("Where is my parcel?\n-- \nAlice Smith\n+1 555 0100") == "Where is my parcel?"
    assert strip_quotes_and_signature("Where is my parcel?\n\nSent from my iPhone") == "Where is my parcel?"


def test_html_mail_becomes_text_without_the_quoted_part() -> None:
    markup = ('<html><head><style>p{color:red}</style></head><body><div dir="ltr">Hello,<br>'
              'the lamp is <b>broken</b> &amp; flickers.</div><div class="gmail_quote">'
              '<div>On Mon, Bob wrote:</div><blockquote>Thanks for your order</blockquote></div></body></html>')
    text = html_to_text(markup)
    assert "Hello," in text and "the lamp is broken & flickers." in text
    assert "color:red" not in text
    assert strip_quotes_and_signature(text) == "Hello,\nthe lamp is broken & flickers."


def test_html_only_mail_is_read(tmp_path: object) -> None:
    mail = EmailMessage()
    mail["From"] = "Alice <alice@example.com>"
    mail["To"] = "support@shop.test"
    mail["Subject"] = "Lamp"
    mail["Message-ID"] = "<h1@example.com>"
    mail.set_content("<p>My lamp <i>flickers</i>.</p>", subtype="html")
    parsed = _parse(mail)
    assert parsed.message.text == "My lamp flickers."
    assert parsed.message.metadata["email"]["html"] is True


def test_full_text_is_kept_and_attachments_are_listed() -> None:
    mail = shopper_mail("Alice <alice@example.com>", "support@shop.test", "Broken lamp",
                        "The lamp arrived broken, photo attached.\n-- \nAlice")
    mail.add_attachment(b"\x89PNG fake image bytes", maintype="image", subtype="png", filename="lamp.png")
    mail.add_attachment(b"%PDF-1.4 receipt", maintype="application", subtype="pdf", filename="receipt.pdf")
    msg = _parse(mail).message
    assert msg.channel == "email" and msg.sender == "alice@example.com" and msg.sender_name == "Alice"
    assert msg.text == "The lamp arrived broken, photo attached."
    assert "-- \nAlice" in msg.metadata["email"]["full_text"]
    assert [(a.kind, a.filename, a.mime_type) for a in msg.attachments] == [
        ("image", "lamp.png", "image/png"), ("document", "receipt.pdf", "application/pdf")]
    assert msg.external_id == str(mail["Message-ID"]).strip("<>")
    assert msg.thread_key == msg.external_id  # a new mail starts its own thread


def test_a_reply_joins_the_thread_of_its_root() -> None:
    first = shopper_mail("alice@example.com", "support@shop.test", "Order 1042", "Where is it?")
    second = shopper_mail("alice@example.com", "support@shop.test", "Re: Order 1042", "Any news?",
                          reply_to=first)
    third = shopper_mail("alice@example.com", "support@shop.test", "Re: Order 1042", "Hello??",
                         reply_to=second)
    keys = {_parse(m).message.thread_key for m in (first, second, third)}
    assert keys == {str(first["Message-ID"]).strip("<>")}
    assert _parse(third).message.text == "Hello??"


def test_a_reply_naming_only_our_message_finds_the_thread_through_the_lookup() -> None:
    mail = shopper_mail("alice@example.com", "support@shop.test", "Re: Order", "ok")
    mail["In-Reply-To"] = "<nd17.123@shop.test>"
    parsed = parse_mail(bytes(mail), SETTINGS, thread_lookup={"nd17.123@shop.test": "root@example.com"})
    assert isinstance(parsed, ParsedMail) and parsed.message.thread_key == "root@example.com"


@pytest.mark.parametrize("headers, sender", [
    ({"Auto-Submitted": "auto-replied"}, "alice@example.com"),
    ({"Auto-Submitted": "auto-generated"}, "alice@example.com"),
    ({"Precedence": "bulk"}, "alice@example.com"),
    ({"Precedence": "list"}, "alice@example.com"),
    ({"X-Autoreply": "yes"}, "alice@example.com"),
    ({"X-Autorespond": "Out of office"}, "alice@example.com"),
    ({"List-Id": "<news.example.com>"}, "alice@example.com"),
    ({}, "MAILER-DAEMON@example.com"),
    ({}, "postmaster@example.com"),
    ({}, "no-reply@example.com"),
    ({}, "noreply@example.com"),
])
def test_robots_get_no_answer(headers: dict[str, str], sender: str) -> None:
    mail = shopper_mail(sender, "support@shop.test", "Automatic reply: Order 1042", "I am out of office.",
                        headers=headers)
    assert isinstance(parse_mail(bytes(mail), SETTINGS), IgnoredMail)


def test_a_person_saying_auto_submitted_no_is_answered() -> None:
    mail = shopper_mail("alice@example.com", "support@shop.test", "Order", "Hi", headers={"Auto-Submitted": "no"})
    assert isinstance(parse_mail(bytes(mail), SETTINGS), ParsedMail)


def test_amazon_buyer_message_is_channel_amazon_with_a_deadline() -> None:
    mail = shopper_mail("Jane Buyer - Amazon Marketplace <x7k2m9p4q@marketplace.amazon.com>",
                        "seller@shop.test", "Inquiry from Amazon customer Jane (Order: 305-1234567-7654321)",
                        "Hello, when will my desk lamp arrive?")
    msg = _parse(mail).message
    assert msg.channel == "amazon" and msg.sender == "x7k2m9p4q@marketplace.amazon.com"
    deadline = msg.metadata["reply_deadline"]
    assert deadline > msg.received_at.isoformat()
    assert msg.metadata["amazon_alias"] == msg.sender


@pytest.mark.parametrize(("date", "zone"), [
    ("Wed, 02 Dec 2026 07:45:00 -0500", "Etc/GMT+5"),  # five hours behind UTC: New York in winter
    ("Wed, 02 Dec 2026 13:45:00 +0100", "Etc/GMT-1"),
    ("Wed, 02 Dec 2026 21:45:00 +0900", "Etc/GMT-9"),
    ("Wed, 02 Dec 2026 12:45:00 +0000", None),  # servers that write UTC say nothing of the sender
    ("Wed, 02 Dec 2026 18:15:00 +0530", None),  # no Etc zone for half hours
    ("not a date", None),
])
def test_the_mail_clients_utc_offset_gives_the_conversations_time_zone(date: str, zone: str | None) -> None:
    mail = shopper_mail("Alice <alice@example.com>", "support@shop.test", "order", "Where is my order?")
    del mail["Date"]
    mail["Date"] = date
    assert _parse(mail).message.timezone_hint == zone


def test_amazon_relay_mail_gives_no_time_zone() -> None:
    mail = shopper_mail("Jane Buyer - Amazon Marketplace <x7k2m9p4q@marketplace.amazon.com>",
                        "seller@shop.test", "Inquiry from Amazon customer Jane", "Hello, when will it arrive?")
    del mail["Date"]
    mail["Date"] = "Wed, 02 Dec 2026 07:45:00 -0800"  # Amazon's server, not the buyer
    assert _parse(mail).message.timezone_hint is None


def _reply(channel: EmailChannel, text: str, context: dict, author: str = "bot") -> EmailMessage:
    out = OutboundMessage(message_id=7, conversation_id=3, channel=channel.name, recipient="alice@example.com",
                          text=text, author=author, quick_replies=(QuickReply("Track order", "track"),))
    composed = channel.compose(out, context)
    return BytesParser(policy=policy.default).parsebytes(bytes(composed))  # type: ignore[return-value]


def test_bot_reply_threads_and_announces_itself_as_automatic() -> None:
    channel = EmailChannel(SETTINGS, redis=None)
    reply = _reply(channel, "Your <order> ships tomorrow.", {
        "message_id": "m2@example.com", "references": ["m1@example.com"], "subject": "Re: Order 1042"})
    assert reply["Subject"] == "Re: Order 1042"
    assert reply["In-Reply-To"] == "<m2@example.com>"
    assert reply["References"] == "<m1@example.com> <m2@example.com>"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["From"] == "Lumen Home <support@shop.test>"
    text = body_of(reply, "plain")
    markup = body_of(reply, "html")
    assert "Your <order> ships tomorrow." in text and "-- \nLumen Home support" in text
    assert "Your &lt;order&gt; ships tomorrow." in markup and "Lumen Home support" in markup
    assert "Track order" in text


def test_a_markdown_answer_is_rendered_in_the_html_part_and_plain_in_the_text_part() -> None:
    channel = EmailChannel(SETTINGS, redis=None)
    answer = ("You can return items within **30 days**.\n\n| Destination | Standard |\n|---|---|\n"
              "| USA | 8–12 days |")
    reply = _reply(channel, answer, {"message_id": "m2@example.com", "references": [], "subject": "Re: returns"})
    text, markup = body_of(reply, "plain"), body_of(reply, "html")
    assert "within 30 days." in text and "**" not in text and "- USA: Standard 8–12 days" in text
    assert "<strong>30 days</strong>" in markup and "<td>USA</td>" in markup and "**" not in markup


def test_agent_reply_is_not_marked_automatic_and_subject_gets_one_re() -> None:
    channel = EmailChannel(SETTINGS, redis=None)
    reply = _reply(channel, "Hi Alice, I checked it.", {"message_id": "m1@example.com", "references": [],
                                                        "subject": "Order 1042"}, author="agent:li")
    assert reply["Subject"] == "Re: Order 1042" and reply["Auto-Submitted"] is None


def test_amazon_reply_comes_from_the_registered_seller_address() -> None:
    channel = EmailChannel(SETTINGS, redis=None, name="amazon")
    reply = _reply(channel, "It ships today.", {"message_id": "a1@marketplace.amazon.com", "references": [],
                                                "subject": "Inquiry from Amazon customer Jane"})
    assert "seller@shop.test" in str(reply["From"])
    assert reply["In-Reply-To"] == "<a1@marketplace.amazon.com>"


def test_legacy_charsets_and_encoded_subjects_are_read() -> None:
    german = (b"From: =?iso-8859-1?q?J=FCrgen_M=FCller?= <juergen@example.de>\r\n"
              b"To: support@shop.test\r\nSubject: =?utf-8?b?UsO8Y2tnYWJlIG3DtmdsaWNoPw==?=\r\n"
              b"Message-ID: <de1@example.de>\r\nMIME-Version: 1.0\r\n"
              b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
              b"Gr=FC=DF Gott, ist eine R=FCckgabe m=F6glich?\r\n")
    japanese = (b"From: taro@example.jp\r\nTo: support@shop.test\r\nSubject: test\r\n"
                b"Message-ID: <jp1@example.jp>\r\nMIME-Version: 1.0\r\n"
                b"Content-Type: text/plain; charset=iso-2022-jp\r\n\r\n") + "注文はいつ届きますか".encode(
                    "iso-2022-jp") + b"\r\n"
    de = _parse_raw(german.replace(b"MIME-Version", b"Content-Language: de-DE\r\nMIME-Version"))
    assert de.locale_hint == "de-DE"
    assert de.sender_name == "Jürgen Müller" and de.metadata["email"]["subject"] == "Rückgabe möglich?"
    assert de.text == "Grüß Gott, ist eine Rückgabe möglich?"
    assert _parse_raw(japanese).text == "注文はいつ届きますか"


def test_reply_goes_to_the_reply_to_address() -> None:
    mail = shopper_mail("Alice <alice@example.com>", "support@shop.test", "Order", "Write me at home",
                        headers={"Reply-To": "alice.home@example.net"})
    parsed = _parse(mail)
    assert parsed.message.sender == "alice@example.com"  # the identity stays the sender
    channel = EmailChannel(SETTINGS, redis=None)
    reply = _reply(channel, "Sure.", {"message_id": parsed.message.external_id, "references": [],
                                      "subject": "Order", "reply_to": "alice.home@example.net"})
    assert reply["To"] == "alice.home@example.net"


def _parse_raw(raw: bytes):  # type: ignore[no-untyped-def]
    parsed = parse_mail(raw, SETTINGS)
    assert isinstance(parsed, ParsedMail), parsed
    return parsed.message
