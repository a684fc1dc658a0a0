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
import contextlib
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from devsetup import (
    KEY_FILE,
    ROOT,
    SERVICES,
    UV_RUN,
    VAR,
    Config,
    Service,
    answers,
    fail,
    infra,
    missing_infra,
    prepare,
    say,
)
from supervisor import ChildSpec, Supervisor

LOGS = VAR / "log"
PIDS = VAR / "run"
SUPERVISOR_PID = PIDS / "supervisor.pid"


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
        say(f"{name} did not stop in {timeout_s:.0f} s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _stop_services() -> None:
    for service in reversed(SERVICES):
        path = _pid_file(service)
        pid = _read_pid(path)
        if pid is not None and _alive(pid):
            _stop_group(pid, service.name)
            say(f"stopped {service.name}")
        path.unlink(missing_ok=True)


def run(config: Config) -> None:
    """Start everything and stay in the foreground until interrupted."""
    supervisor = _read_pid(SUPERVISOR_PID)
    if supervisor is not None and supervisor != os.getpid() and _alive(supervisor):
        fail(f"already running (pid {supervisor}); stop it first with: make stop")
    busy = [s for s in SERVICES if answers(config.host, s.port, timeout_s=0.5)]
    if busy:
        ports = ", ".join(f"{s.port} ({s.name})" for s in busy)
        fail(f"port already in use: {ports}; is Klaxon already running? try: make stop")

    missing = missing_infra(config)
    if missing:
        fail(f"{', '.join(missing)} not answering; see `make test` or README for how to start")
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
        say=say,
        on_start=_started,
    )
    try:
        children.start_all()
        for service in SERVICES:
            say(f"started {service.name}, log in var/log/{service.name}.log")

        deadline = time.monotonic() + config.ready_timeout_s
        waiting = list(SERVICES)
        while waiting and not stopping:
            children.poll()
            waiting = [s for s in waiting if not _ready(config, s)]
            if waiting and time.monotonic() > deadline:
                names = ", ".join(s.name for s in waiting)
                for service in waiting:
                    print(_tail(LOGS / f"{service.name}.log"), file=sys.stderr)
                fail(f"not ready after {config.ready_timeout_s:.0f} s: {names}; see var/log/")
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
        say("stopping")
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
    say("nothing running")


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
