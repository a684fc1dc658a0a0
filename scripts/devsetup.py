"""Set up what ``scripts/devrun.py`` runs: the services, where Postgres and RabbitMQ are,
whether they answer (``infra``, starting them with ``docker compose`` if a Docker engine
answers), and ``prepare``: the database, each service's role, schema and migrations, and
the intake admin key (kept in ``var/intake-admin-key.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
KEY_FILE = VAR / "intake-admin-key.json"
UV_RUN = [os.environ.get("UV") or shutil.which("uv") or "uv", "run", "--frozen"]
DOCKER = shutil.which("docker") or "docker"


@dataclass(frozen=True)
class Service:
    """One of Klaxon's services as this script runs it."""

    name: str
    package: str
    schema: str
    port: int

    @property
    def role(self) -> str:
        """The Postgres role that owns the service's schema."""
        return f"klaxon_{self.schema}"


SERVICES = (
    Service("intake", "intake", "intake", 8001),
    Service("monitor", "monitor", "monitor", 8002),
    Service("notifier", "notifier", "notifier", 8003),
    Service("statuspage-sync", "statuspage_sync", "statuspage", 8004),
)


@dataclass(frozen=True)
class Config:
    """Where Postgres and RabbitMQ are (the Makefile passes its variables)."""

    admin_url: str
    database: str
    amqp_url: str
    role_password: str
    host: str
    ready_timeout_s: float

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Config:
        """The configuration the command line asked for."""
        return cls(
            admin_url=args.admin_url,
            database=args.database,
            amqp_url=args.amqp_url,
            role_password=args.role_password,
            host=args.host,
            ready_timeout_s=args.ready_timeout,
        )

    def superuser_url(self) -> str:
        """The superuser URL, pointed at Klaxon's database."""
        url = make_url(self.admin_url).set(database=self.database)
        return url.render_as_string(hide_password=False)

    def service_url(self, service: Service) -> str:
        """The URL a service connects with: its own role, Klaxon's database."""
        url = make_url(self.admin_url).set(
            username=service.role, password=self.role_password, database=self.database
        )
        return url.render_as_string(hide_password=False)

    def service_env(self, service: Service) -> dict[str, str]:
        """The environment a service process runs with."""
        env = dict(os.environ)
        env.update(
            {
                "KLAXON_DATABASE_URL": self.service_url(service),
                "KLAXON_AMQP_URL": self.amqp_url,
                "KLAXON_HTTP_HOST": self.host,
                "KLAXON_HTTP_PORT": str(service.port),
                "KLAXON_LOG_JSON": os.environ.get("KLAXON_LOG_JSON", "true"),
            }
        )
        env.pop("KLAXON_DB_SCHEMA", None)
        return env


def say(message: str) -> None:
    print(f"klaxon: {message}", flush=True)


def fail(message: str) -> None:
    print(f"klaxon: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parsed = make_url(url)
    return parsed.host or "127.0.0.1", parsed.port or default_port


def answers(host: str, port: int, timeout_s: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


async def _postgres_answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


def _amqp_host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = rest.partition(":")
    return host or "127.0.0.1", int(port or 5672)


def missing_infra(config: Config) -> list[str]:
    missing = []
    if not asyncio.run(_postgres_answers(config.admin_url)):
        missing.append("postgres")
    if not answers(*_amqp_host_port(config.amqp_url)):
        missing.append("rabbitmq")
    return missing


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(  # noqa: S603 (fixed command)
        [DOCKER, "info"], capture_output=True, check=False, stdin=subprocess.DEVNULL
    )
    return result.returncode == 0


def infra(config: Config, wait_s: float) -> None:
    """Make sure Postgres and RabbitMQ answer, starting them with Docker if possible."""
    missing = missing_infra(config)
    if not missing:
        say("postgres and rabbitmq answer")
        return
    if not _docker_answers():
        pg_host, pg_port = _host_port(config.admin_url, 5432)
        amqp_host, amqp_port = _amqp_host_port(config.amqp_url)
        hints = {
            "postgres": f"postgres does not answer at {pg_host}:{pg_port}; start it with: "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start "
            "(or: docker compose up -d postgres)",
            "rabbitmq": f"rabbitmq does not answer at {amqp_host}:{amqp_port}; start it with: "
            "rabbitmq-server -detached (or: docker compose up -d rabbitmq)",
        }
        for name in missing:
            print(f"klaxon: error: {hints[name]}", file=sys.stderr)
        fail("no Docker engine answers either (docker info), so they cannot be started here")
    say(f"{', '.join(missing)} not answering; starting with docker compose")
    subprocess.run(  # noqa: S603 (fixed command)
        [DOCKER, "compose", "up", "-d", "postgres", "rabbitmq"],
        cwd=ROOT,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + wait_s
    while missing := missing_infra(config):
        if time.monotonic() > deadline:
            fail(f"{', '.join(missing)} still not answering after {wait_s:.0f} s")
        time.sleep(1)
    say("postgres and rabbitmq answer")


async def _ensure_database(config: Config) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(config.admin_url))
    try:
        exists = await conn.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", config.database
        )
        if not exists:
            quoted = await conn.fetchval("SELECT quote_ident($1)", config.database)
            await conn.execute(f"CREATE DATABASE {quoted}")
            say(f"created database {config.database}")
    finally:
        await conn.close()


async def _key_exists(config: Config, key_id: str) -> bool:
    conn = await asyncpg.connect(_asyncpg_dsn(config.superuser_url()))
    try:
        found = await conn.fetchval(
            "SELECT 1 FROM intake.api_key WHERE id = $1::uuid AND revoked_at IS NULL", key_id
        )
    finally:
        await conn.close()
    return bool(found)


def _cli(service: Service, *args: str, env: dict[str, str]) -> str:
    result = subprocess.run(  # noqa: S603 (our own CLI)
        [*UV_RUN, "python", "-m", service.package, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        fail(f"{service.name} {args[0]} failed (exit {result.returncode})")
    return result.stdout


def prepare(config: Config) -> dict[str, str]:
    """Create the database, provision and migrate every service, make the admin key."""
    asyncio.run(_ensure_database(config))
    for service in SERVICES:
        env = config.service_env(service)
        _cli(
            service,
            "provision",
            "--role",
            service.role,
            "--admin-url",
            config.superuser_url(),
            "--password",
            config.role_password,
            env=env,
        )
        _cli(service, "migrate", env=env)
        say(f"{service.name}: schema {service.schema} provisioned and migrated")

    intake = SERVICES[0]
    if KEY_FILE.exists():
        stored: dict[str, str] = json.loads(KEY_FILE.read_text())
        if asyncio.run(_key_exists(config, stored["id"])):
            return stored
        say("the stored admin key is not in this database any more; creating a new one")
    output = _cli(
        intake, "create-api-key", "--name", "admin", "--scope", "admin", env=intake_env(config)
    )
    line = next(line for line in output.splitlines() if line.startswith("{"))
    created: dict[str, str] = json.loads(line)
    KEY_FILE.write_text(json.dumps(created) + "\n")
    KEY_FILE.chmod(0o600)
    return created


def intake_env(config: Config) -> dict[str, str]:
    """The intake service's environment, with plain-text logs for one-off commands."""
    env = config.service_env(SERVICES[0])
    env["KLAXON_LOG_JSON"] = "false"
    return env
