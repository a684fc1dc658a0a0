"""The command line every service shares: ``python -m <service> serve|migrate|...``."""

import argparse
import asyncio
import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import uvicorn
from aio_pika.exceptions import AMQPError, ChannelNotFoundEntity
from fastapi import FastAPI

from servicekit.api_server import server_options
from servicekit.auth import ADMIN, create_api_key
from servicekit.bus import ReplayStopped, declare_topology, replay_dead_letters
from servicekit.catalogue import request_if_empty
from servicekit.db import create_engine, provision_schema, session_factory
from servicekit.logging import configure_logging
from servicekit.migrations import upgrade
from servicekit.parking import parked_command
from servicekit.settings import ServiceSettings


@dataclass(frozen=True)
class ServiceDefinition:
    """What the CLI needs to know about a service."""

    name: str
    load_settings: Callable[[], ServiceSettings]
    create_app: Callable[[ServiceSettings], FastAPI]
    migrations: Path
    scopes: frozenset[str] = frozenset({ADMIN})
    """The API-key scopes the service's routes check; `create-api-key` accepts only these."""


async def declare_broker(settings: ServiceSettings) -> None:
    """Declare the events exchange and every service's queues and bindings from
    `contracts.topology.CONSUMES`, on the settings' exchange and queue prefix."""
    connection = await aio_pika.connect(settings.amqp_url, timeout=10)
    async with connection:
        await declare_topology(connection, exchange=settings.exchange, prefix=settings.queue_prefix)


async def migrate_database(settings: ServiceSettings, migrations: Path) -> None:
    """Upgrade the service's schema; ask for the product catalogue if its copy is empty
    (`servicekit.catalogue.request_if_empty`)."""
    await upgrade(settings, migrations)
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            await request_if_empty(session, service=settings.service_name)
    finally:
        await engine.dispose()


async def migrate(settings: ServiceSettings, migrations: Path) -> None:
    """What ``migrate`` does: `migrate_database`, then `declare_broker`, so no event is
    published before the queue that must receive it exists."""
    await migrate_database(settings, migrations)
    await declare_broker(settings)


async def _create_key(settings: ServiceSettings, name: str, scopes: list[str]) -> None:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session:
            key = await create_api_key(session, name=name, scopes=scopes)
            await session.commit()
    finally:
        await engine.dispose()
    print(
        json.dumps({"id": str(key.id), "name": key.name, "scopes": key.scopes, "key": key.secret})
    )


def main(service: ServiceDefinition, argv: Sequence[str] | None = None) -> None:
    """Parse `argv` and run the command."""
    parser = argparse.ArgumentParser(prog=service.name, description=f"Klaxon {service.name}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP API and background loops")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    commands.add_parser(
        "migrate",
        help="upgrade the service's schema; declare every service's queues and bindings",
    )
    provision = commands.add_parser(
        "provision", help="create the service's Postgres role and schema (needs a superuser)"
    )
    provision.add_argument("--admin-url", default=os.environ.get("KLAXON_ADMIN_DATABASE_URL"))
    provision.add_argument("--role", required=True)
    provision.add_argument("--password", default=os.environ.get("KLAXON_ROLE_PASSWORD", ""))
    key = commands.add_parser("create-api-key", help="create an API key and print it once")
    key.add_argument("--name", default="admin")
    key.add_argument(
        "--scope", action="append", dest="scopes", default=None, choices=sorted(service.scopes)
    )
    commands.add_parser(
        "replay-dead-letters",
        help="move the events in the service's dead-letter queue back to its queue",
    )
    parked = commands.add_parser(
        "parked", help="outbox events and timers parked after too many failed attempts"
    ).add_subparsers(dest="action", required=True)
    parked.add_parser("list", help="print each parked event and timer as a JSON line")
    retry = parked.add_parser("retry", help="put parked events and timers back to work")
    chosen = retry.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--id", type=uuid.UUID, action="append", dest="ids", metavar="UUID")
    chosen.add_argument("--all", action="store_true")
    args = parser.parse_args(argv)

    settings = service.load_settings()
    configure_logging(settings.service_name, settings.log_level, json_lines=settings.log_json)
    if args.command == "serve":
        app = service.create_app(settings)
        uvicorn.run(
            app,
            host=args.host or settings.http_host,
            port=args.port or settings.http_port,
            log_config=None,
            access_log=False,
            **server_options(app),
        )
    elif args.command == "migrate":
        asyncio.run(migrate_database(settings, service.migrations))
        try:
            asyncio.run(declare_broker(settings))
        except (AMQPError, OSError) as exc:
            parser.exit(
                2,
                f"{service.name}: schema migrated, but the broker's queues could not be"
                f" declared ({exc!r}); run migrate again once the broker answers\n",
            )
    elif args.command == "provision":
        if not args.admin_url:
            parser.error("provision needs --admin-url or KLAXON_ADMIN_DATABASE_URL")
        asyncio.run(
            provision_schema(
                args.admin_url, schema=settings.db_schema, role=args.role, password=args.password
            )
        )
    elif args.command == "replay-dead-letters":
        try:
            moved = asyncio.run(
                replay_dead_letters(
                    settings.amqp_url, service=settings.service_name, prefix=settings.queue_prefix
                )
            )
        except ChannelNotFoundEntity as exc:
            parser.exit(2, f"{service.name}: no such queue ({exc}); has the service run?\n")
        except ReplayStopped as exc:
            print(json.dumps({"replayed": exc.moved, "stopped": str(exc)}))
            parser.exit(1, f"{service.name}: stopped after {exc.moved}: {exc}\n")
        except (AMQPError, OSError) as exc:
            parser.exit(2, f"{service.name}: cannot reach the broker ({exc!r})\n")
        print(json.dumps({"replayed": moved}))
    elif args.command == "parked":
        retrying = args.action == "retry"
        ids = args.ids if retrying else None  # None with --all: every parked row
        rows = asyncio.run(parked_command(settings, retry=retrying, ids=ids))
        for row in rows:
            print(json.dumps(row.as_json()))
        if ids and len(rows) < len(set(ids)):
            parser.exit(
                1, f"{service.name}: {len(set(ids)) - len(rows)} of the ids are not parked\n"
            )
    elif args.command == "create-api-key":
        asyncio.run(_create_key(settings, args.name, args.scopes or [ADMIN]))
