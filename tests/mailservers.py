"""Real mail servers for the email tests: Dovecot IMAP and an aiosmtpd relay that delivers into its maildirs.

Both listen on free loopback ports. The relay writes every accepted message into the Maildir of each
local recipient (the Maildir `tmp/` -> `new/` rename protocol), so Dovecot serves it over IMAP and
wakes IDLE clients, exactly as a real MTA + MDA pair would.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from tests.servers import free_port, wait_for_port

# Dovecot refuses to give mail access to uid 0, so mailboxes belong to an unprivileged user.
MAIL_UID = 65534
MAIL_GID = 65534


@dataclass(frozen=True)
class MailUser:
    address: str
    password: str = "secret"

    @property
    def login(self) -> str:
        return self.address


class DovecotServer:
    """Debian's Dovecot with a private config: IMAP only, plaintext auth, Maildirs under a tmp dir."""

    def __init__(self, workdir: Path, users: list[MailUser]) -> None:
        self.workdir = workdir
        self.users = {u.address: u for u in users}
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = workdir / "dovecot.conf"
        self.log = workdir / "dovecot.log"

    def maildir(self, address: str) -> Path:
        return self.workdir / "mail" / address / "Maildir"

    def _write_config(self) -> None:
        wd = self.workdir
        for sub in ("run", "state", "mail"):
            (wd / sub).mkdir(parents=True, exist_ok=True)
        lines = []
        for user in self.users.values():
            home = wd / "mail" / user.address
            for sub in ("cur", "new", "tmp"):
                (home / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
            lines.append(f"{user.address}:{{PLAIN}}{user.password}:{MAIL_UID}:{MAIL_GID}::{home}::")
        (wd / "users").write_text("\n".join(lines) + "\n")
        self.conf.write_text(f"""
protocols = imap
listen = 127.0.0.1
base_dir = {wd / 'run'}
state_dir = {wd / 'state'}
log_path = {self.log}
info_log_path = {self.log}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
first_valid_uid = 1
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {wd / 'users'}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {wd / 'users'}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
""")
        # The imap processes run as the mail user and must reach the Maildirs.
        os.chmod(wd, 0o755)
        subprocess.run(["chown", "-R", f"{MAIL_UID}:{MAIL_GID}", str(wd / "mail")], check=True)

    def start(self) -> DovecotServer:
        exe = shutil.which("dovecot") or "/usr/sbin/dovecot"
        self._write_config()
        self.proc = subprocess.Popen([exe, "-F", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_port(self.port)
        except TimeoutError:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"dovecot did not start; log:\n{log}") from None
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def deliver(self, address: str, raw: bytes) -> Path:
        """Drop one message into a user's Maildir the way an MDA does (write in tmp/, rename into new/)."""
        box = self.maildir(address)
        name = f"{time.time_ns()}.{os.getpid()}_{threading.get_ident()}.{socket.gethostname()}"
        tmp = box / "tmp" / name
        # Maildir files use the local line ending; Dovecot turns it back into CRLF over IMAP.
        raw = raw.replace(b"\r\n", b"\n")
        tmp.write_bytes(raw if raw.endswith(b"\n") else raw + b"\n")
        os.chown(tmp, MAIL_UID, MAIL_GID)
        final = box / "new" / name
        os.rename(tmp, final)
        return final


@dataclass
class RelayedMail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: Message = field(repr=False)


class _DeliveringHandler:
    def __init__(self, relay: SmtpRelay) -> None:
        self.relay = relay

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        raw: bytes = envelope.original_content or envelope.content
        mail = RelayedMail(envelope.mail_from, list(envelope.rcpt_tos), raw, message_from_bytes(raw))
        self.relay.record(mail)
        for rcpt in envelope.rcpt_tos:
            if rcpt.lower() in self.relay.dovecot.users:
                self.relay.dovecot.deliver(rcpt.lower(), raw)
        return "250 Message accepted for delivery"


class SmtpRelay:
    """aiosmtpd on a loopback port; local recipients get the message in their Dovecot Maildir."""

    def __init__(self, dovecot: DovecotServer) -> None:
        self.dovecot = dovecot
        self.port = free_port()
        self.sent: list[RelayedMail] = []
        self._lock = threading.Lock()
        self._controller = Controller(_DeliveringHandler(self), hostname="127.0.0.1", port=self.port)

    def record(self, mail: RelayedMail) -> None:
        with self._lock:
            self.sent.append(mail)

    def messages_to(self, address: str) -> list[RelayedMail]:
        with self._lock:
            return [m for m in self.sent if address.lower() in (r.lower() for r in m.rcpt_tos)]

    async def wait_for(self, count: int, address: str | None = None, wait_s: float = 20.0) -> list[RelayedMail]:
        """Wait until `count` messages (to `address`, if given) went through the relay."""
        deadline = time.monotonic() + wait_s
        while True:
            found = self.messages_to(address) if address else list(self.sent)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.05)

    def start(self) -> SmtpRelay:
        self._controller.start()
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        self._controller.stop()


def make_workdir(prefix: str) -> Path:
    # Under /tmp with 0755 so that the unprivileged mail user can traverse it.
    return Path(tempfile.mkdtemp(prefix=prefix))
