"""Fixtures for the channel tests: the fake Meta Graph API, Dovecot + the SMTP relay, a Redis client."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from tests.fakes.meta_graph import FakeMetaGraph
from tests.mailservers import DovecotServer, MailUser, SmtpRelay, make_workdir

SHOP = MailUser("support@shop.test", "shop-pass")
ALICE = MailUser("alice@example.com", "alice-pass")
BOB = MailUser("bob@example.org", "bob-pass")
AMAZON_ALIAS = MailUser("x7k2m9p4q@marketplace.amazon.com", "amazon-pass")


@pytest.fixture
def meta_graph() -> Iterator[FakeMetaGraph]:
    fake = FakeMetaGraph().start()
    yield fake
    fake.stop()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    workdir = make_workdir("nd-dovecot-")
    server = DovecotServer(workdir, [SHOP, ALICE, BOB, AMAZON_ALIAS]).start()
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def mailboxes(dovecot: DovecotServer) -> DovecotServer:
    """Dovecot with every test mailbox emptied, so that each test starts from an empty INBOX."""
    for address in dovecot.users:
        box = dovecot.maildir(address)
        for sub in ("cur", "new", "tmp"):
            for f in (box / sub).iterdir():
                f.unlink()
        # Forget UIDs: a fresh mailbox gets a new UIDVALIDITY, like a recreated folder on a real server.
        for f in box.glob("dovecot*"):
            if f.is_file():
                f.unlink()
    return dovecot


@pytest.fixture
def smtp_relay(mailboxes: DovecotServer) -> Iterator[SmtpRelay]:
    relay = SmtpRelay(mailboxes).start()
    yield relay
    relay.stop()
