"""The /v1 REST API for pages: list, read, acknowledge and resolve (by API key, or by a
signed link from a notification: a GET shows a confirm page, the POST acts)."""

import html
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from notifier import links, pages_view, schemas
from notifier.api_deps import ERRORS, LinkSecretDep, Pager, Reader, SettingsDep, body
from notifier.settings import Settings
from servicekit.api import json_body
from servicekit.api_openapi import error_responses
from servicekit.deps import SessionDep, commit
from servicekit.problems import Problem

router = APIRouter(prefix="/v1")
Id = uuid.UUID


# --- pages --------------------------------------------------------------------------


@router.get("/pages", responses=ERRORS)
async def list_pages(
    _: Reader,
    session: SessionDep,
    state: Literal["triggered", "acknowledged", "resolved"] | None = None,
    product: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[schemas.PageRead]:
    """Pages, newest first."""
    return await pages_view.list_pages(session, state=state, product=product, limit=limit)


@router.get("/pages/{page_id}", responses=ERRORS)
async def get_page(page_id: Id, _: Reader, session: SessionDep) -> schemas.PageRead:
    """One page with its tickets and timeline."""
    return await pages_view.get_page(session, page_id)


@router.post("/pages/{page_id}/{action}", responses=ERRORS, openapi_extra=body(schemas.PageAction))
async def act_on_page(
    page_id: Id,
    action: Literal["acknowledge", "resolve"],
    principal: Pager,
    data: Annotated[schemas.PageAction, Depends(json_body(schemas.PageAction))],
    session: SessionDep,
    settings: SettingsDep,
) -> schemas.PageRead:
    """Acknowledge (stops the escalation) or resolve a page."""
    read = await pages_view.act(
        session,
        settings,
        page_id,
        action=action,
        person_id=data.person_id,
        fallback=f"API key {principal.name}",
        note=data.note,
    )
    await commit(session)
    return read


_CONFIRM = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width"><title>Klaxon: {verb} page</title></head>
<body style="font-family:Arial,Helvetica,sans-serif;max-width:560px;margin:40px auto;padding:0 16px">
<h1 style="font-size:22px">{verb} this page?</h1><p>{product}: {summary}</p><p>State: {state}</p>
<form method="post"><button type="submit" style="padding:10px 18px;font-size:16px">{verb}</button></form>
</body></html>"""


def _link(settings: Settings, secret: str, token: str) -> links.LinkAction:
    try:
        return links.read_link(settings, secret, token)
    except links.BadLink as exc:
        raise LinkRefused(str(exc)) from exc


class LinkRefused(Problem):
    """A forged, altered or expired action link."""

    status = 403
    title = "Link refused"


@router.get("/links/{token}", response_class=HTMLResponse, responses=error_responses(403, 404))
async def confirm_link(
    token: str, session: SessionDep, settings: SettingsDep, secret: LinkSecretDep
) -> HTMLResponse:
    """The confirm page of a signed acknowledge/resolve link (a GET changes nothing)."""
    link = _link(settings, secret, token)
    current = await pages_view.get_page(session, link.page_id)
    verb = "Acknowledge" if link.action == "acknowledge" else "Resolve"
    return HTMLResponse(
        _CONFIRM.format(
            verb=verb,
            product=html.escape(current.product_name),
            summary=html.escape(current.summary),
            state=html.escape(current.state),
        )
    )


@router.post(
    "/links/{token}", response_class=HTMLResponse, responses=error_responses(403, 404, 409)
)
async def act_by_link(
    token: str, session: SessionDep, settings: SettingsDep, secret: LinkSecretDep
) -> HTMLResponse:
    """Perform a signed link's action."""
    link = _link(settings, secret, token)
    read = await pages_view.act(
        session,
        settings,
        link.page_id,
        action=link.action,
        person_id=link.person_id,
        fallback="link",
    )
    await commit(session)
    return HTMLResponse(
        f'<!DOCTYPE html><html lang="en"><body style="font-family:Arial,sans-serif">'
        f"<h1>Page {html.escape(read.state)}</h1><p>{html.escape(read.summary)}</p></body></html>"
    )
