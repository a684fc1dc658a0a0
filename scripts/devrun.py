"""Run Klaxon on this machine against the local Postgres and RabbitMQ.

``uv run python scripts/devrun.py run``    create the database, provision and migrate every
                                           service, start them, wait until ready, stay in
                                           the foreground until Ctrl-C (or ``stop``)
``uv run python scripts/devrun.py stop``   stop what ``run`` started
``uv run python scripts/devrun.py infra``  check that Postgres and RabbitMQ answer; start them
                                           with ``docker compose`` if a Docker engine does

Everything it writes lives under ``var/`` (gitignored): logs in ``var/log/``, process ids
in ``var/run/``, the intake admin key in ``var/intake-admin-key.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url
from supervisor import ChildSpec, Supervisor

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
LOGS = VAR / "log"
PIDS = VAR / "run"
KEY_FILE = VAR / "intake-admin-key.json"
SUPERVISOR_PID = PIDS / "supervisor.pid"
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


def _say(message: str) -> None:
    print(f"klaxon: {message}", flush=True)


def _fail(message: str) -> None:
    print(f"klaxon: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parsed = make_url(url)
    return parsed.host or "127.0.0.1", parsed.port or default_port


def _answers(host: str, port: int, timeout_s: float = 2.0) -> bool:
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


def _missing(config: Config) -> list[str]:
    missing = []
    if not asyncio.run(_postgres_answers(config.admin_url)):
        missing.append("postgres")
    if not _answers(*_amqp_host_port(config.amqp_url)):
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
    missing = _missing(config)
    if not missing:
        _say("postgres and rabbitmq answer")
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
        _fail("no Docker engine answers either (docker info), so they cannot be started here")
    _say(f"{', '.join(missing)} not answering; starting with docker compose")
    subprocess.run(  # noqa: S603 (fixed command)
        [DOCKER, "compose", "up", "-d", "postgres", "rabbitmq"],
        cwd=ROOT,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + wait_s
    while missing := _missing(config):
        if time.monotonic() > deadline:
            _fail(f"{', '.join(missing)} still not answering after {wait_s:.0f} s")
        time.sleep(1)
    _say("postgres and rabbitmq answer")


async def _ensure_database(config: Config) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(config.admin_url))
    try:
        exists = await conn.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", config.database
        )
        if not exists:
            quoted = await conn.fetchval("SELECT quote_ident($1)", config.database)
            await conn.execute(f"CREATE DATABASE {quoted}")
            _say(f"created database {config.database}")
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
        _fail(f"{service.name} {args[0]} failed (exit {result.returncode})")
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
        _say(f"{service.name}: schema {service.schema} provisioned and migrated")

    intake = SERVICES[0]
    if KEY_FILE.exists():
        stored: dict[str, str] = json.loads(KEY_FILE.read_text())
        if asyncio.run(_key_exists(config, stored["id"])):
            return stored
        _say("the stored admin key is not in this database any more; creating a new one")
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


def _pid_file(service: Service) -> Path:
    return PIDS / f"{service.name}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _ready(config: Config, service: Service) -> bool:
    url = f"http://{config.host}:{service.port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop_group(pid: int, name: str, timeout_s: float = 15.0) -> None:
    """Stop the process group that `pid` leads (a service started by `run`)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if _alive(pid):
        _say(f"{name} did not stop in {timeout_s:.0f} s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _stop_services() -> None:
    for service in reversed(SERVICES):
        path = _pid_file(service)
        pid = _read_pid(path)
        if pid is not None and _alive(pid):
            _stop_group(pid, service.name)
            _say(f"stopped {service.name}")
        path.unlink(missing_ok=True)


def run(config: Config) -> None:
    """Start everything and stay in the foreground until interrupted."""
    supervisor = _read_pid(SUPERVISOR_PID)
    if supervisor is not None and supervisor != os.getpid() and _alive(supervisor):
        _fail(f"already running (pid {supervisor}); stop it first with: make stop")
    busy = [s for s in SERVICES if _answers(config.host, s.port, timeout_s=0.5)]
    if busy:
        ports = ", ".join(f"{s.port} ({s.name})" for s in busy)
        _fail(f"port already in use: {ports}; is Klaxon already running? try: make stop")

    missing = _missing(config)
    if missing:
        _fail(f"{', '.join(missing)} not answering; see `make test` or README for how to start")
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    key = prepare(config)

    stopping = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    SUPERVISOR_PID.write_text(f"{os.getpid()}\n")

    def _started(spec: ChildSpec, pid: int) -> None:
        (PIDS / f"{spec.name}.pid").write_text(f"{pid}\n")

    children = Supervisor(
        [
            ChildSpec(
                name=service.name,
                argv=[*UV_RUN, "python", "-m", service.package, "serve"],
                env=config.service_env(service),
                log_path=LOGS / f"{service.name}.log",
                cwd=ROOT,
            )
            for service in SERVICES
        ],
        say=_say,
        on_start=_started,
    )
    try:
        children.start_all()
        for service in SERVICES:
            _say(f"started {service.name}, log in var/log/{service.name}.log")

        deadline = time.monotonic() + config.ready_timeout_s
        waiting = list(SERVICES)
        while waiting and not stopping:
            children.poll()
            waiting = [s for s in waiting if not _ready(config, s)]
            if waiting and time.monotonic() > deadline:
                names = ", ".join(s.name for s in waiting)
                for service in waiting:
                    print(_tail(LOGS / f"{service.name}.log"), file=sys.stderr)
                _fail(f"not ready after {config.ready_timeout_s:.0f} s: {names}; see var/log/")
            time.sleep(0.3)
        if stopping:
            return

        print()
        print("Klaxon is running:")
        for service in SERVICES:
            base = f"http://{config.host}:{service.port}"
            print(f"  {service.name:<16} {base}   API docs {base}/docs   health {base}/health")
        print(f"  logs             {LOGS.relative_to(ROOT)}/<service>.log")
        print(f"  intake admin key {key['key']}")
        print(
            f"                   (in {KEY_FILE.relative_to(ROOT)}; send 'Authorization: Bearer <key>')"
        )
        print("A service that dies is restarted (with backoff) and logged here.")
        print("Press Ctrl-C to stop (or run `make stop` elsewhere).", flush=True)

        while not stopping:
            children.poll()
            time.sleep(0.5)
    finally:
        _say("stopping")
        children.stop_all()
        _stop_services()
        SUPERVISOR_PID.unlink(missing_ok=True)


def stop() -> None:
    """Stop a running ``run``: ask its supervisor, then make sure every service is gone."""
    supervisor = _read_pid(SUPERVISOR_PID)
    if supervisor is not None and _alive(supervisor):
        os.kill(supervisor, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _alive(supervisor) and time.monotonic() < deadline:
            time.sleep(0.2)
    SUPERVISOR_PID.unlink(missing_ok=True)
    _stop_services()
    _say("nothing running")


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the command."""
    parser = argparse.ArgumentParser(
        prog="scripts/devrun.py", description="Run Klaxon on this machine."
    )
    parser.add_argument(
        "--admin-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
        help="a Postgres superuser URL (SQLAlchemy form)",
    )
    parser.add_argument("--database", default="klaxon", help="the database Klaxon runs in")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--role-password", default="klaxon", help="password of each service role")
    parser.add_argument("--host", default="127.0.0.1", help="interface the services listen on")
    parser.add_argument("--ready-timeout", type=float, default=60.0, help="seconds to wait")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="provision, migrate and run every service in the foreground")
    commands.add_parser("stop", help="stop what `run` started")
    check = commands.add_parser("infra", help="check (or start with Docker) Postgres and RabbitMQ")
    check.add_argument("--wait", type=float, default=90.0, help="seconds to wait after starting")
    args = parser.parse_args(argv)
    config = Config.from_args(args)
    if args.command == "run":
        run(config)
    elif args.command == "stop":
        stop()
    else:
        infra(config, args.wait)


if __name__ == "__main__":
    main()
