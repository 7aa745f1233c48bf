"""Channel benchmark: how fast Nightdesk answers Meta's webhooks, drops duplicate storms, gets a WhatsApp
reply out, and picks up email from IMAP IDLE. Real app, real Redis, SQLite, fake Graph API, Dovecot.

    python bench/channels.py --out bench/results/channels.json
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

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.demo import load_demo  # noqa: E402
from bot.store.db import Database  # noqa: E402
from bot.store.models import Message  # noqa: E402
from tests.channels.appserver import AppServer  # noqa: E402
from tests.channels.mailtools import shopper_mail, smtp_send  # noqa: E402
from tests.fakes.meta_graph import FakeMetaGraph  # noqa: E402
from tests.mailservers import DovecotServer, MailUser, SmtpRelay, make_workdir  # noqa: E402
from tests.servers import RedisServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHOP = MailUser("support@shop.test", "shop-pass")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": pct(values, 0.5), "p99_ms": pct(values, 0.99),
            "mean_ms": round(statistics.fmean(values) * 1000, 2)}


async def post(client: httpx.AsyncClient, meta: FakeMetaGraph, payload: dict[str, Any]) -> float:
    raw = json.dumps(payload).encode()
    started = time.perf_counter()
    resp = await client.post(meta.webhook_url or "", content=raw,
                             headers={"X-Hub-Signature-256": meta.sign(raw), "Content-Type": "application/json"})
    elapsed = time.perf_counter() - started
    assert resp.status_code == 200, resp.text
    return elapsed


async def count_in(db: Database, channel: str) -> int:
    async with db.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(Message).where(
            Message.channel == channel, Message.direction == "in"))).scalar_one())


async def run(messages: int, mails: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="nd-bench-channels-"))
    redis = RedisServer(work / "redis").start()
    meta = FakeMetaGraph().start()
    dovecot = DovecotServer(make_workdir("nd-bench-dovecot-"), [SHOP]).start() if os.geteuid() == 0 else None
    relay = SmtpRelay(dovecot).start() if dovecot else None
    database_url = f"sqlite+aiosqlite:///{work / 'nightdesk.db'}"
    extra: dict[str, Any] = {}
    if dovecot and relay:
        extra = dict(email_imap_host="127.0.0.1", email_imap_port=dovecot.port, email_imap_ssl=False,
                     email_username=SHOP.login, email_password=SHOP.password, email_smtp_host="127.0.0.1",
                     email_smtp_port=relay.port, email_smtp_starttls=False, email_from=SHOP.address)
    settings = Settings(
        database_url=database_url, redis_url=redis.url, var_dir=work / "var", project=ROOT / "examples" / "demo-store",
        whatsapp_app_secret=meta.app_secret, whatsapp_verify_token="v", whatsapp_access_token=meta.access_token,
        whatsapp_phone_number_id=meta.phone_number_id, whatsapp_graph_url=meta.base_url,
        whatsapp_api_version=meta.version, whatsapp_template_name="order_followup", **extra,
    )
    await load_demo(settings)
    server = await asyncio.to_thread(AppServer(settings).start)
    meta.webhook_url = f"{server.url}/webhooks/whatsapp"
    db = Database(database_url)
    result: dict[str, Any] = {"database": "sqlite", "nlu_model": "as configured in the demo project"}
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            # 1. Webhook acknowledgement: one message at a time, from many users.
            acks = [await post(client, meta, meta.user_message(f"49151{i % 40:07d}", text=f"hello {i}"))
                    for i in range(messages)]
            result["webhook_ack_sequential"] = summary(acks)
            # 2. A redelivery storm: 50 copies of one message at once.
            dup = meta.user_message("4915100000999", text="duplicate storm")
            storm = await asyncio.gather(*[post(client, meta, dup) for _ in range(50)])
            result["duplicate_storm_50_ack"] = summary(list(storm))
            # 3. Concurrent load: 20 in flight.
            started = time.perf_counter()
            sem = asyncio.Semaphore(20)

            async def one(i: int) -> float:
                async with sem:
                    return await post(client, meta, meta.user_message(f"49152{i % 40:07d}", text=f"load {i}"))

            conc = await asyncio.gather(*[one(i) for i in range(messages)])
            result["webhook_ack_concurrent_20"] = {**summary(list(conc)),
                                                  "per_second": round(messages / (time.perf_counter() - started), 1)}
        # 4. Inbound to reply at the fake Graph API (engine + sender), one user at a time.
        latencies = []
        async with httpx.AsyncClient(timeout=30) as client:
            for i in range(min(messages, 40)):
                user = f"49153{i:07d}"
                started = time.perf_counter()
                await post(client, meta, meta.user_message(user, text="hi, what are your opening hours?"))
                if not await meta.wait_for_sent(1, user, wait_s=60):
                    raise RuntimeError(f"no WhatsApp reply to {user} within 60 s")
                latencies.append(time.perf_counter() - started)
        result["whatsapp_inbound_to_reply"] = summary(latencies)
        # 5. Email: SMTP in -> IMAP IDLE -> stored.
        if relay is not None:
            await server.call(lambda: asyncio.wait_for(server.state.mail_listener.ready.wait(), 30))
            mail_lat = []
            for i in range(mails):
                before = await count_in(db, "email")
                started = time.perf_counter()
                await smtp_send(relay, shopper_mail("alice@example.com", SHOP.address, f"Q{i}", f"Question {i}"))
                while await count_in(db, "email") <= before:
                    await asyncio.sleep(0.01)
                mail_lat.append(time.perf_counter() - started)
            result["email_smtp_to_stored"] = summary(mail_lat)
    finally:
        await db.dispose()
        await asyncio.to_thread(server.stop)
        meta.stop()
        if relay:
            relay.stop()
        if dovecot:
            dovecot.stop()
            shutil.rmtree(dovecot.workdir, ignore_errors=True)
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--mails", type=int, default=20)
    args = parser.parse_args()
    result = asyncio.run(run(args.messages, args.mails))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for name, value in result.items():
        if isinstance(value, dict):
            print(f"{name:28s} p50 {value['p50_ms']:8.1f} ms  p99 {value['p99_ms']:8.1f} ms  n={value['n']}"
                  + (f"  {value['per_second']}/s" if "per_second" in value else ""))


if __name__ == "__main__":
    main()
