"""What the shopper's mail client does in the email tests: write mails over SMTP, read a mailbox over IMAP."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid

import aioimaplib
import aiosmtplib

from tests.mailservers import DovecotServer, MailUser, SmtpRelay


def shopper_mail(sender: str, to: str, subject: str, body: str, *, reply_to: EmailMessage | None = None,
                 headers: dict[str, str] | None = None, html: str | None = None,
                 msgid_domain: str = "example.com") -> EmailMessage:
    """A mail as a shopper's client writes it; as a reply it quotes the original and threads to it."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = make_msgid(domain=msgid_domain)
    if reply_to is not None:
        parent = str(reply_to["Message-ID"])
        refs = str(reply_to.get("References", "")).split()
        mail["In-Reply-To"] = parent
        mail["References"] = " ".join([*refs, parent])
        quoted = "\n".join("> " + line for line in _plain(reply_to).splitlines())
        body = f"{body}\n\nOn {reply_to['Date'] or 'Mon, 1 Jan 2026'}, {reply_to['From']} wrote:\n{quoted}\n"
    for k, v in (headers or {}).items():
        mail[k] = v
    mail.set_content(body)
    if html is not None:
        mail.add_alternative(html, subtype="html")
    return mail


def _plain(mail: EmailMessage) -> str:
    return body_of(mail, "plain")


def body_of(mail: EmailMessage, subtype: str) -> str:
    """The text/plain or text/html body of a mail ("" when it has none)."""
    part = mail.get_body(preferencelist=(subtype,))
    return str(part.get_content()) if part is not None else ""


async def smtp_send(relay: SmtpRelay, mail: EmailMessage) -> None:
    await aiosmtplib.send(mail, hostname="127.0.0.1", port=relay.port)


async def read_mailbox(dovecot: DovecotServer, user: MailUser) -> list[EmailMessage]:
    """Every mail in the user's INBOX, fetched over IMAP like a mail client does."""
    client = aioimaplib.IMAP4(host="127.0.0.1", port=dovecot.port)
    await client.wait_hello_from_server()
    await client.login(user.login, user.password)
    await client.select("INBOX")
    resp = await client.uid("fetch", "1:*", "(BODY.PEEK[])")
    await client.logout()
    mails = []
    for line in resp.lines:
        if isinstance(line, bytearray):
            mails.append(BytesParser(policy=policy.default).parsebytes(bytes(line)))
    return mails  # type: ignore[return-value]


async def wait_for_mailbox(dovecot: DovecotServer, user: MailUser, count: int,
                           wait_s: float = 20.0) -> list[EmailMessage]:
    deadline = time.monotonic() + wait_s
    while True:
        mails = await read_mailbox(dovecot, user)
        if len(mails) >= count or time.monotonic() > deadline:
            return mails
        await asyncio.sleep(0.1)


def ids(value: str | None) -> list[str]:
    return re.findall(r"<([^<>\s]+)>", value or "")
