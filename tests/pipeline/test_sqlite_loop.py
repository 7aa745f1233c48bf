"""SQLite statements that run on the event loop's own thread never stall it: a writer waiting for the lock
waits in its connection's thread, and a long read gives way to the thread after a moment. A process's writers
take turns at its write gate."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from bot.store import db as db_module
from bot.store.db import Database
from bot.store.models import Customer

T = TypeVar("T")


async def _database(tmp_path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'nightdesk.db'}")
    await db.migrate()
    return db


def _record_customer_inserts(monkeypatch: pytest.MonkeyPatch, note: Callable[[Any], T]) -> list[T]:
    """What `note` makes of each INSERT INTO customers as SQLite is given it (its parameters), in order."""
    noted: list[T] = []
    run = db_module._run

    def recording_run(conn: Any, sql: str, parameters: Any, many: bool) -> Any:
        if sql.lstrip().upper().startswith("INSERT INTO CUSTOMERS"):
            noted.append(note(parameters))
        return run(conn, sql, parameters, many)

    monkeypatch.setattr(db_module, "_run", recording_run)
    return noted


async def test_a_writer_waiting_for_another_sessions_lock_leaves_the_loop_free(tmp_path: Path) -> None:
    db = await _database(tmp_path)
    try:
        async with db.sessions() as first:
            first.add(Customer(display_name="first"))
            await first.flush()  # holds SQLite's write lock until its commit, which needs this loop

            async def second_writer() -> None:
                async with db.sessions() as second, second.begin():
                    second.add(Customer(display_name="second"))
                    await second.flush()
                    second.add(Customer(display_name="third"))  # a further write of a transaction holding the lock
                    await second.flush()

            waiting = asyncio.create_task(second_writer())
            await asyncio.sleep(0.3)
            assert not waiting.done()
            async with db.sessions() as reader:  # reads go on meanwhile, and see nothing uncommitted
                assert (await reader.execute(select(func.count()).select_from(Customer))).scalar_one() == 0
            await first.commit()
        await asyncio.wait_for(waiting, 10)
        async with db.sessions() as reader:
            names = (await reader.execute(select(Customer.display_name).order_by(Customer.id))).scalars().all()
        assert names == ["first", "second", "third"]
    finally:
        await db.dispose()


async def test_a_long_read_does_not_hold_up_other_coroutines(tmp_path: Path) -> None:
    db = await _database(tmp_path)
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    try:
        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        started = time.perf_counter()
        async with db.sessions() as session:
            count = (await session.execute(text(
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000000) "
                "SELECT count(*) FROM n"))).scalar_one()
        took = time.perf_counter() - started
        done.set()
        await ticking
        assert count == 3_000_000
        assert took > 0.2, "the query should take a while for this test to mean anything"
        # A loop blocked by the read would stall for the whole read; a busy machine may pause any process for
        # a while, so the bound grows with the read (which a busy machine slows too).
        assert max(gaps) < max(0.1, took / 2), (
            f"the loop stalled for {max(gaps) * 1000:.0f} ms during a {took * 1000:.0f} ms read")
    finally:
        await db.dispose()


async def test_writers_of_one_process_queue_at_the_gate_and_go_the_moment_the_lock_is_free(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite's busy handler sleeps between tries (up to 100 ms each): a second writer of this process waits at
    # the process's write gate instead, with its statement not yet sent to SQLite, and goes on the commit.
    db = await _database(tmp_path)
    started = _record_customer_inserts(monkeypatch, str)
    try:
        async with db.sessions() as first:
            first.add(Customer(display_name="first"))
            await first.flush()

            async def second_writer() -> None:
                async with db.sessions() as second, second.begin():
                    second.add(Customer(display_name="second"))

            waiting = asyncio.create_task(second_writer())
            await asyncio.sleep(0.3)
            assert not waiting.done()
            assert len(started) == 1, "the second writer's INSERT went to SQLite while the first held the lock"
            await first.commit()
        await asyncio.wait_for(waiting, 10)
        assert len(started) == 2
        async with db.sessions() as reader:
            names = (await reader.execute(select(Customer.display_name).order_by(Customer.id))).scalars().all()
        assert names == ["first", "second"]
    finally:
        await db.dispose()


async def test_a_writer_kept_waiting_too_long_at_the_gate_gets_database_is_locked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_module, "BUSY_TIMEOUT_S", 0.3)
    db = await _database(tmp_path)
    try:
        async with db.sessions() as first:
            first.add(Customer(display_name="first"))
            await first.flush()
            with pytest.raises(OperationalError, match="database is locked"):
                async with db.sessions() as second, second.begin():
                    second.add(Customer(display_name="second"))
            await first.commit()
        async with db.sessions() as later, later.begin():  # the gate is free again
            later.add(Customer(display_name="later"))
        async with db.sessions() as reader:
            names = (await reader.execute(select(Customer.display_name).order_by(Customer.id))).scalars().all()
        assert names == ["first", "later"]
    finally:
        await db.dispose()


async def test_a_first_write_runs_on_the_loop_when_the_lock_is_free_and_waits_in_the_thread_when_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Going to the connection's thread for a lock that is free costs a hand-off and, on a busy loop, holds the
    # lock until the loop gets back to the transaction. When another process holds it, the write must still
    # wait without stalling the loop, and the transaction must come through whole.
    db = await _database(tmp_path)
    threads = _record_customer_inserts(monkeypatch, lambda _parameters: threading.get_ident())
    loop_thread = threading.get_ident()
    try:
        async with db.sessions() as session, session.begin():
            session.add(Customer(display_name="free"))
        assert threads == [loop_thread], "a write with the lock free went to the connection's thread"

        other_process = sqlite3.connect(tmp_path / "nightdesk.db", isolation_level=None)
        other_process.execute("BEGIN IMMEDIATE")  # another process's writer, outside this process's gate
        threads.clear()

        async def writer() -> None:
            async with db.sessions() as session, session.begin():
                session.add(Customer(display_name="waited"))
                await session.flush()
                session.add(Customer(display_name="too"))

        waiting = asyncio.create_task(writer())
        started = time.perf_counter()
        await asyncio.sleep(0.3)
        # A writer waiting for the lock on the loop's thread would hold the loop for the whole busy timeout (30 s).
        assert time.perf_counter() - started < 5, "the loop stalled while the writer waited for the lock"
        assert not waiting.done()
        other_process.execute("INSERT INTO customers (display_name, created_at) VALUES ('other', '2026-01-01')")
        other_process.execute("COMMIT")
        other_process.close()
        await asyncio.wait_for(waiting, 10)
        # Tried on the loop, waited for in the thread; the next write of the transaction, holding the lock, inline.
        assert len(threads) == 3 and threads[0] == threads[2] == loop_thread != threads[1], threads
        async with db.sessions() as reader:
            names = (await reader.execute(select(Customer.display_name).order_by(Customer.id))).scalars().all()
        assert names == ["free", "other", "waited", "too"]
    finally:
        await db.dispose()


async def test_a_first_write_that_fails_on_the_loop_leaves_the_gate_to_the_next_writer(tmp_path: Path) -> None:
    db = await _database(tmp_path)
    try:
        with pytest.raises(OperationalError, match="no such table"):
            async with db.sessions() as session, session.begin():
                await session.execute(text("INSERT INTO nowhere (x) VALUES (:x)"), {"x": 1})

        async def next_writer() -> None:
            async with db.sessions() as session, session.begin():
                session.add(Customer(display_name="next"))

        await asyncio.wait_for(next_writer(), 5)
        async with db.sessions() as reader:
            names = (await reader.execute(select(Customer.display_name))).scalars().all()
        assert names == ["next"]
    finally:
        await db.dispose()
