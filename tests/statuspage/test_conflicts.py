"""Two requests racing for the same unique name: one wins, the others get a 409, never a 500."""

import asyncio

from tests.statuspage.helpers import PRODUCT, StatusPages


async def test_pages_created_at_once_with_one_slug_are_one_page_and_conflicts(
    statuspage: StatusPages,
) -> None:
    body = {"slug": "canvas", "title": "Canvas Hosting", "products": [PRODUCT.slug]}
    responses = await asyncio.gather(
        *(
            statuspage.client.post("/v1/pages", json=body, headers=statuspage.auth())
            for _ in range(8)
        )
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * 7, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["detail"] == "a status page 'canvas' exists"
    assert [page["slug"] for page in await statuspage.get("/v1/pages")] == ["canvas"]


async def test_pages_renamed_at_once_to_one_slug_are_one_rename_and_conflicts(
    statuspage: StatusPages,
) -> None:
    for slug in ("a", "b", "c", "d"):
        await statuspage.page(slug)
    responses = await asyncio.gather(
        *(
            statuspage.client.patch(
                f"/v1/pages/{slug}", json={"slug": "status"}, headers=statuspage.auth()
            )
            for slug in ("a", "b", "c", "d")
        )
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 409, 409, 409], [r.text for r in responses]
    slugs = sorted(page["slug"] for page in await statuspage.get("/v1/pages"))
    assert len(slugs) == 4
    assert "status" in slugs
