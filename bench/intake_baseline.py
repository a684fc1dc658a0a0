"""bench/intake.py's yardsticks: a bare FastAPI app with two endpoints on asyncpg.

- ``POST /baseline`` inserts one row;
- ``POST /floor`` runs the statements of a filing bare (key lookup; product and number
  lookup; in a transaction, one statement that claims the Idempotency-Key and inserts the
  ticket, its timeline entry and the outbox row), to show what the round trips alone
  cost: no validation, no relay, no framework beyond FastAPI.

`TABLES` makes what both need; the bench runs `serve` in a process of its own.
"""

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

TABLES = """
CREATE TABLE baseline (
    id uuid PRIMARY KEY, body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE floor_key (key_hash text PRIMARY KEY, scopes text[] NOT NULL);
CREATE TABLE floor_idempotency (
    key text PRIMARY KEY, request_hash text NOT NULL, response jsonb NOT NULL
);
CREATE TABLE floor_product (slug text PRIMARY KEY, name text NOT NULL);
CREATE SEQUENCE floor_number;
CREATE TABLE floor_ticket (id uuid PRIMARY KEY, body jsonb NOT NULL);
CREATE TABLE floor_event (id bigserial PRIMARY KEY, ticket_id uuid NOT NULL, kind text NOT NULL);
CREATE TABLE floor_outbox (seq bigserial PRIMARY KEY, id uuid NOT NULL, body bytea NOT NULL);
INSERT INTO floor_product VALUES ('canvas-hosting', 'Canvas Hosting');
"""
ADD_KEY = "INSERT INTO floor_key VALUES ($1, '{tickets:write}')"
"""The floor's copy of intake's API key: $1 is the key's SHA-256, in hex."""
FLOOR_AUTH = "SELECT scopes FROM floor_key WHERE key_hash = $1"
FLOOR_LOOKUP = (
    "SELECT name, nextval('floor_number') AS seq, now() FROM floor_product WHERE slug = $1"
)
FLOOR_FILE = (
    "WITH claim AS (INSERT INTO floor_idempotency VALUES ($4, $5, $3::jsonb)"
    " ON CONFLICT DO NOTHING RETURNING key),"
    " ticket AS (INSERT INTO floor_ticket (id, body) SELECT $1, $2::jsonb FROM claim),"
    " entry AS (INSERT INTO floor_event (ticket_id, kind) SELECT $1, 'filed' FROM claim)"
    " INSERT INTO floor_outbox (id, body) SELECT $1, $6 FROM claim"
)


def baseline_app(dsn: str) -> FastAPI:
    """The app, on a pool of 10 to 20 connections to `dsn`."""
    pool: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool["db"] = await asyncpg.create_pool(dsn, min_size=10, max_size=20)
        try:
            yield
        finally:
            await pool["db"].close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/baseline", status_code=201)
    async def insert(request: Request) -> JSONResponse:
        body = await request.body()
        row_id = uuid.uuid4()
        await pool["db"].execute(
            "INSERT INTO baseline (id, body) VALUES ($1, $2::jsonb)", row_id, body.decode()
        )
        return JSONResponse({"id": str(row_id)}, status_code=201)

    @app.post("/floor", status_code=201)
    async def file_bare(request: Request) -> JSONResponse:
        """The round trips a filing needs, bare: no validation, no relay, no framework."""
        body = (await request.body()).decode()
        token = request.headers["authorization"].removeprefix("Bearer ")
        key = request.headers["idempotency-key"]
        async with pool["db"].acquire() as conn:
            if await conn.fetchrow(FLOOR_AUTH, hashlib.sha256(token.encode()).hexdigest()) is None:
                return JSONResponse({"title": "Unauthorized"}, status_code=401)
        async with pool["db"].acquire() as conn:
            found = await conn.fetchrow(FLOOR_LOOKUP, "canvas-hosting")
            ticket_id = uuid.uuid4()
            answer = json.dumps({"id": str(ticket_id), "number": f"KLX-{found['seq']}"})
            fingerprint = hashlib.sha256(body.encode()).hexdigest()
            async with conn.transaction():
                await conn.execute(
                    FLOOR_FILE, ticket_id, body, answer, key, fingerprint, answer.encode()
                )
        return JSONResponse(json.loads(answer), status_code=201)

    return app


def serve(port: int, dsn: str) -> None:
    """Serve the app under uvicorn on `port` until stopped."""
    uvicorn.run(
        baseline_app(dsn), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
