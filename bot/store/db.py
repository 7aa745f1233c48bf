"""The database handle: an async engine, a session factory, and migrations applied at start."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_S = 30.0  # how long a SQLite writer waits for the write lock before "database is locked"


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


class Database:
    """One per process. SQLite gets WAL and a busy timeout so API, workers and senders share it."""

    def __init__(self, url: str, echo: bool = False) -> None:
        if not url:
            raise ValueError("a database URL is required")
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, object] = {"echo": echo}
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_S}
            # A turn holds its session's connection while actions and identity linking use their own: with
            # many turns in flight the default pool (5 + 10) can run dry with every holder waiting for a second
            # connection. SQLite connections are cheap; the ones beyond the pool are closed when returned.
            kwargs.update(pool_size=16, max_overflow=112)
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)  # type: ignore[arg-type]
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "do_connect", _one_trip_connections)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(self.engine, expire_on_commit=False)

    async def migrate(self) -> None:
        """Apply every Alembic migration not yet applied (idempotent; safe at each start)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    wal = str((cursor.fetchone() or ("",))[0]).lower() == "wal"
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    cursor.close()
    driver = getattr(dbapi_connection, "driver_connection", None)
    if isinstance(driver, OneTripConnection):
        driver.inline = wal


def _one_trip_connections(_dialect: object, _record: object, _cargs: object, cparams: dict[str, Any]) -> None:
    cparams["async_creator_fn"] = _connect_one_trip


def _connect_one_trip(database: str, **kwargs: Any) -> OneTripConnection:
    # Used from the event loop's thread too (reads run there), never from two threads at once.
    connection = OneTripConnection(database, {**kwargs, "check_same_thread": False})
    connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite: never keeps the process alive
    return connection


INLINE_READ_BUDGET_S = 0.002
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
# One row by its values or by its primary key: quick, whatever the table holds.
_ONE_ROW_WRITE = re.compile(
    r"\s*(?:INSERT INTO \S+ \([^()]*\) VALUES \([^()]*\)(?: RETURNING [^()]*)?|UPDATE \S+ SET [^()]* WHERE \S+\.id = \?)\s*",
    re.DOTALL)


class OneTripConnection(aiosqlite.Connection):
    """aiosqlite, with each statement one trip to the connection's thread instead of four, and many none.

    SQLAlchemy opens a cursor, executes, fetches and closes it, and aiosqlite makes each of those a
    hand-off to its thread and a wake-up of the event loop; a turn runs some twenty statements, and the
    hand-offs cost more CPU than SQLite itself. Here the statement runs, its rows are fetched and its
    cursor closed in one call on the connection's thread.

    On a WAL database, statements that cannot wait for another connection run on the event loop's own
    thread instead, with no hand-off at all: a blocking wait there for a lock that another coroutine of this
    process holds would never end. So, on the loop's thread:
    - reads (SELECT): WAL readers never wait for a writer. One still running after INLINE_READ_BUDGET_S is
      interrupted and run again on the connection's thread, so a long query never holds up the loop;
    - a transaction's first write, when it is a one-row write (an INSERT of values, an UPDATE by primary key),
      tried once with no wait for the lock: when another process holds it, the transaction (nothing but its
      BEGIN yet) is ended and the write goes to the connection's thread to wait there;
    - once the transaction holds the write lock, its one-row writes and its COMMIT: nothing is left to wait
      for. So a transaction whose first write finds the lock free runs to its commit without leaving the
      loop's thread, and holds the lock for its statements only, not for whatever else the loop is running.
    Everything else (other writes, DDL, savepoints, rollbacks) goes to the thread.
    Before its first write, a transaction takes its turn at the process's write gate (_WriteGate).
    """

    def __init__(self, database: str, connect_kwargs: dict[str, Any]) -> None:
        super().__init__(self._open, 64)
        self._database = database
        self._connect_kwargs = connect_kwargs
        self.inline = False  # set once the connection is known to be in WAL mode
        self._inline_deadline = 0.0  # while a read runs on the loop's thread: when it gives way
        self._wrote = False  # the open transaction made a write: it holds the write lock
        self._gate: _WriteGate | None = None  # held from the transaction's first write to its end

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._database, **self._connect_kwargs)
        conn.set_progress_handler(self._over_budget, 1000)
        return conn

    def _over_budget(self) -> int:
        return int(bool(self._inline_deadline) and time.perf_counter() > self._inline_deadline)

    @property
    def _holds_write_lock(self) -> bool:
        return self._wrote and self._conn.in_transaction

    async def execute_one_trip(self, sql: str, parameters: Any, many: bool) -> tuple[list[Any], Any, int, int | None]:
        kind = _kind(sql)
        if self.inline and not many:
            if kind == "read":
                result = self._read_inline(sql, parameters)
                if result is not None:
                    return result
            elif kind == "row_write" and self._holds_write_lock:
                return _run(self._conn, sql, parameters, False)
        if kind in ("row_write", "write") and self._gate is None:
            self._gate = await _WriteGate.enter(self._database)
        try:
            first_inline = None
            if kind == "row_write" and self.inline and not many and not self._conn.in_transaction:
                first_inline = self._first_write_inline(sql, parameters)
            result = first_inline or await self._execute(_run, self._conn, sql, parameters, many)
        finally:
            if self._connection is None or not self._connection.in_transaction:
                self._leave_gate()
        if kind != "read":
            self._wrote = kind in ("row_write", "write")
        return result

    def _leave_gate(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.leave()

    def _first_write_inline(self, sql: str, parameters: Any) -> tuple[list[Any], Any, int, int | None] | None:
        """A transaction's first write, on the calling thread when the write lock is free at once; None when
        another connection holds it (the transaction is then ended, holding nothing, for the thread to wait)."""
        conn = self._conn
        conn.execute("PRAGMA busy_timeout=0")
        try:
            return _run(conn, sql, parameters, False)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            conn.rollback()  # only the BEGIN went through: nothing of the transaction is lost
            return None
        finally:
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")

    def _read_inline(self, sql: str, parameters: Any) -> tuple[list[Any], Any, int, int | None] | None:
        """Run a read on the calling thread; None when it took too long and should go to the connection's thread."""
        self._inline_deadline = time.perf_counter() + INLINE_READ_BUDGET_S
        try:
            return _run(self._conn, sql, parameters, False)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_INTERRUPT:
                return None
            raise
        finally:
            self._inline_deadline = 0.0

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    # Outside a transaction sqlite3's commit and rollback do nothing; the pool rolls back every connection it
    # gets back, most of them only read: no trip to the thread for that.
    async def commit(self) -> None:
        if self._connection is not None and not self._connection.in_transaction:
            self._leave_gate()
            return
        try:
            if self.inline and self._holds_write_lock:
                self._conn.commit()
            else:
                await super().commit()
        finally:
            self._wrote = False
            if self._connection is None or not self._connection.in_transaction:
                self._leave_gate()

    async def rollback(self) -> None:
        if self._connection is not None and not self._connection.in_transaction:
            self._leave_gate()
            return
        try:
            await super().rollback()
        finally:
            self._wrote = False
            if self._connection is None or not self._connection.in_transaction:
                self._leave_gate()

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            self._leave_gate()


class _WriteGate:
    """One process's write transactions on one SQLite file, one at a time, each going the moment the one
    before it ends.

    SQLite lets one connection write at a time; the others wait in its busy handler, which sleeps between
    tries (1, 2, 5 ... up to 100 ms), so a lock freed after 2 ms is often taken many milliseconds later: with
    32 turns in flight, writers waited 80 ms on average. Here they wait on an asyncio lock instead; only the
    gate's holder meets other processes' writers in the busy handler.
    A task that already holds the gate and writes through a second connection (a nested session) does not
    queue behind itself: it goes straight to SQLite, as it did without a gate.
    """

    _gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _WriteGate]] = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[Any] | None = None
        self._depth = 0

    @classmethod
    async def enter(cls, database: str) -> _WriteGate:
        gates = cls._gates.setdefault(asyncio.get_running_loop(), {})
        gate = gates.get(database)
        if gate is None:
            gate = gates[database] = _WriteGate()
        task = asyncio.current_task()
        if gate._holder is not task:
            if not gate._lock.locked():
                await gate._lock.acquire()
            else:
                try:
                    await asyncio.wait_for(gate._lock.acquire(), BUSY_TIMEOUT_S)
                except TimeoutError:
                    raise sqlite3.OperationalError("database is locked") from None  # as SQLite's busy timeout says
            gate._holder = task
        gate._depth += 1
        return gate

    def leave(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._holder = None
            self._lock.release()


class OneTripCursor:
    """The cursor SQLAlchemy's aiosqlite adapter sees: rows are fetched with the execute, and kept here."""

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self._rows: list[Any] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> OneTripCursor:
        return await self._run(sql, parameters, many=False)

    async def executemany(self, sql: str, parameters: Sequence[Sequence[Any]]) -> OneTripCursor:
        return await self._run(sql, parameters, many=True)

    async def _run(self, sql: str, parameters: Any, *, many: bool) -> OneTripCursor:
        result = await self._connection.execute_one_trip(sql, parameters, many)
        self._rows, self.description, self.rowcount, self.lastrowid = result
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        size = size or self.arraysize
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def close(self) -> None:
        self._rows = []


def _kind(sql: str) -> str:
    """read (a SELECT, or WITH ... SELECT), row_write (one row, see _ONE_ROW_WRITE), write, or other."""
    head = sql.lstrip()[:7].upper()
    if head.startswith("SELECT"):
        return "read"
    if head.startswith("WITH"):
        return "write" if any(word in sql.upper() for word in _WRITES) else "read"
    if head.startswith(_WRITES):
        return "row_write" if _ONE_ROW_WRITE.fullmatch(sql) else "write"
    return "other"


def _run(conn: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> tuple[list[Any], Any, int, int | None]:
    """On the connection's thread: execute, fetch every row, close."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        elif parameters is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return rows, cursor.description, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def run_migrations_sync(url: str) -> None:
    """For the CLI: migrate a database without an event loop of one's own."""
    db = Database(url)

    async def go() -> None:
        await db.migrate()
        await db.dispose()

    asyncio.run(go())
