"""A private PgBouncer in transaction mode (what Neon's pooled URL is) in front of a test
PostgreSQL: its own folder and free port, trust authentication, every database of the server
reachable under its own name. The server itself is never reconfigured."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from lectern_dev.stack import Process, free_port

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
# Few server connections for many clients, so consecutive statements of one client really do
# land on different server connections (what breaks session state).
POOL_SIZE = 6


class PgBouncer:
    def __init__(self, server_url: str, *, pool_size: int = POOL_SIZE) -> None:
        # Its own folder under /tmp: pytest's are private to the user PgBouncer does not run as.
        self.folder = Path(tempfile.mkdtemp(prefix="lectern-pgbouncer-"))
        self.server = server = urlsplit(server_url)
        self.port = free_port()
        self.user = server.username or "postgres"
        self.pool_size = pool_size
        self.process: Process | None = None

    def url(self, database_url: str) -> str:
        """`database_url` (a database on the server) as reached through this pooler."""
        parts = urlsplit(database_url)
        netloc = f"{parts.username or self.user}@127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def _write_config(self) -> Path:
        (self.folder / "users.txt").write_text(f'"{self.user}" ""\n')
        ini = self.folder / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host={self.server.hostname or '127.0.0.1'} port={self.server.port or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir = {self.folder}\n"
            "pool_mode = transaction\n"
            "auth_type = trust\n"
            f"auth_file = {self.folder / 'users.txt'}\n"
            f"default_pool_size = {self.pool_size}\nmin_pool_size = 0\n"
            "max_client_conn = 2000\nmax_db_connections = 0\n"
            # asyncpg and node-postgres send these; PgBouncer passes application_name itself.
            "ignore_startup_parameters = extra_float_digits\n"
            "server_reset_query =\nlog_connections = 0\nlog_disconnections = 0\n"
            "admin_users = " + self.user + "\n"
        )
        return ini

    def start(self) -> PgBouncer:
        ini = self._write_config()
        args = [PGBOUNCER, str(ini)]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            args[1:1] = ["-u", _unprivileged_user()]
            shutil.chown(self.folder, _unprivileged_user())
            for path in self.folder.iterdir():
                shutil.chown(path, _unprivileged_user())
        self.process = Process("pgbouncer", args, env=dict(os.environ), log=self.folder / "log")
        deadline = time.monotonic() + 15
        while not _listening(self.port):
            if not self.process.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not start:\n{self.process.tail()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user to run pgbouncer as")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
