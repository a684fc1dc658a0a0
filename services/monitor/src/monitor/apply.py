"""Monitors (and patch windows) as code: make the stored set match a document.

One transaction for the whole document: creates, updates and (with ``prune``)
deletes, or nothing if any entry is invalid (422 naming the entry and field).
Thousands of monitors are written with a few bulk statements, not one per
monitor; ``dry_run`` computes the same diff and writes nothing.
"""

import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import yaml
from pydantic import ValidationError
from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.models import check_state, monitor, patch_window
from monitor.monitors import (
    Validator,
    apply_changes,
    columns,
    drop_unlisted_regions,
    keep_kind,
    schedule_now,
)
from monitor.schemas import ApplyDocument, ApplyResult, PatchWindowSpec
from monitor.settings import Settings
from monitor.windows import forget_window, schedule_close, validate_window
from servicekit.problems import Unprocessable

COMPARED = (
    "product",
    "component",
    "kind",
    "target",
    "interval_s",
    "timeout_s",
    "recheck_s",
    "failures_to_down",
    "successes_to_up",
    "regions",
    "tags",
    "paused",
)


def parse_document(raw: bytes, media: str) -> ApplyDocument:
    """The apply document from JSON or YAML (a list of monitors, or an object with
    ``monitors`` and ``patch_windows``)."""
    try:
        data: Any = yaml.safe_load(raw) if "yaml" in media else json.loads(raw)
    except (yaml.YAMLError, ValueError) as exc:
        kind = "YAML" if "yaml" in media else "JSON"
        raise Unprocessable("body", f"is not valid {kind}: {exc}") from None
    if isinstance(data, list):
        data = {"monitors": data}
    if not isinstance(data, dict):
        raise Unprocessable("body", "must be a list of monitors or an object with 'monitors'")
    try:
        return ApplyDocument.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise Unprocessable(field, str(first["msg"])) from None


def is_deadlock(exc: BaseException) -> bool:
    """True if `exc` (or what it wraps) is Postgres's deadlock error."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, asyncpg.DeadlockDetectedError):
            return True
        current = current.__cause__ or getattr(current, "orig", None)
    return False


def _same(current: Any, values: dict[str, Any]) -> bool:
    return all(
        (list(current[c]) if c in ("regions", "tags") else current[c]) == values[c]
        for c in COMPARED
    )


async def apply(
    session: AsyncSession, doc: ApplyDocument, settings: Settings, *, dry_run: bool, prune: bool
) -> ApplyResult:
    """Create, update and (with `prune`) delete monitors to match `doc`."""
    seen: set[str] = set()
    validator = Validator(session, settings)
    for i, spec in enumerate(doc.monitors):
        if spec.name in seen:
            raise Unprocessable(f"monitors[{i}].name", f"{spec.name!r} appears twice")
        seen.add(spec.name)
        await validator.check(spec, where=f"monitors[{i}].")
    # Applies run one at a time; rows are written in id order, the order in which the
    # scheduler locks monitors when their state changes, so the two never deadlock.
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('monitor-apply'))"))
    existing = {row.name: row for row in await session.execute(select(monitor))}
    now = datetime.now(UTC)
    new_rows: list[dict[str, Any]] = []
    plain: list[dict[str, Any]] = []
    toggled: list[tuple[uuid.UUID, Any, dict[str, Any]]] = []
    unchanged = 0
    for i, spec in enumerate(doc.monitors):
        values = columns(spec, settings)
        current = existing.get(spec.name)
        if current is not None:
            keep_kind(current.kind, spec, where=f"monitors[{i}].")
        if current is None:
            row = {"id": uuid.uuid4(), **values, "state": "paused" if spec.paused else "pending"}
            row["heartbeat_token"] = secrets.token_urlsafe(24) if spec.kind == "heartbeat" else None
            new_rows.append(row)
        elif _same(current._mapping, values):
            unchanged += 1
        elif current.paused != values["paused"] or (
            values["kind"] == "heartbeat" and current.heartbeat_token is None
        ):
            toggled.append((current.id, current, values))
        else:
            plain.append({"b_id": current.id, **values})
    gone = sorted(set(existing) - seen) if prune else []
    result = ApplyResult(
        dry_run=dry_run,
        created=[r["name"] for r in new_rows],
        updated=[p["name"] for p in plain] + [t[2]["name"] for t in toggled],
        unchanged=unchanged,
        deleted=gone,
    )
    if doc.patch_windows is not None:
        await _apply_windows(
            session, doc.patch_windows, settings, result, dry_run=dry_run, prune=prune
        )
    if dry_run:
        return result
    if new_rows:
        await session.execute(monitor.insert(), new_rows)
        await schedule_now(
            session, [r["id"] for r in new_rows], min(settings.default_interval_s, 60.0)
        )
    if plain:
        plain.sort(key=lambda p: p["b_id"])
        await session.execute(
            update(monitor)
            .where(monitor.c.id == bindparam("b_id"))
            .values(updated_at=now, **{c: bindparam(c) for c in ("name", *COMPARED)}),
            plain,
        )
        for p in plain:
            before = list(existing[p["name"]].regions)
            await drop_unlisted_regions(session, p["b_id"], before, p["regions"])
    if toggled:
        await apply_changes(session, toggled, settings)
    if gone:
        gone_ids = sorted(existing[name].id for name in gone)
        await session.execute(delete(check_state).where(check_state.c.monitor_id.in_(gone_ids)))
        await session.execute(delete(monitor).where(monitor.c.id.in_(gone_ids)))
    return result


async def _apply_windows(
    session: AsyncSession,
    specs: list[PatchWindowSpec],
    settings: Settings,
    result: ApplyResult,
    *,
    dry_run: bool,
    prune: bool,
) -> None:
    names: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.name in names:
            raise Unprocessable(f"patch_windows[{i}].name", f"{spec.name!r} appears twice")
        names.add(spec.name)
        try:
            validate_window(spec)
        except Unprocessable as exc:
            err = exc.extensions["errors"][0]
            raise Unprocessable(f"patch_windows[{i}].{err['field']}", err["reason"]) from None
    existing = {row.name: row for row in await session.execute(select(patch_window))}
    for spec in specs:
        values = spec.model_dump()
        current = existing.get(spec.name)
        if current is None:
            result.patch_windows_created.append(spec.name)
            if not dry_run:
                window_id = uuid.uuid4()
                await session.execute(patch_window.insert().values(id=window_id, **values))
                row = (
                    await session.execute(
                        select(patch_window).where(patch_window.c.id == window_id)
                    )
                ).one()
                await schedule_close(session, row, settings.verification_settle_s)
        elif any(
            current._mapping[k] != (list(v) if isinstance(v, list) else v)
            for k, v in values.items()
        ):
            result.patch_windows_updated.append(spec.name)
            if not dry_run:
                await session.execute(
                    update(patch_window)
                    .where(patch_window.c.id == current.id)
                    .values(**values, updated_at=datetime.now(UTC))
                )
                row = (
                    await session.execute(
                        select(patch_window).where(patch_window.c.id == current.id)
                    )
                ).one()
                await schedule_close(session, row, settings.verification_settle_s)
    if prune:
        for name in sorted(set(existing) - names):
            result.patch_windows_deleted.append(name)
            if not dry_run:
                await forget_window(session, existing[name].id)
                await session.execute(
                    delete(patch_window).where(patch_window.c.id == existing[name].id)
                )
