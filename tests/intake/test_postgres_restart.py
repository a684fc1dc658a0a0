"""A real Postgres restart during a burst of filings: every answer is 201 or 503, never 500,
and the portal's retries with the same Idempotency-Key file each ticket exactly once.

Marked `slow`: it restarts the shared Postgres, so it runs alone (``make test`` runs the
slow tests after the rest). The restart command is ``KLAXON_TEST_PG_RESTART`` (default:
the Debian cluster of this machine, fast shutdown).
"""

import asyncio
import collections
import os
import shlex
import time

import pytest

from tests.harness import Throwaway
from tests.intake.helpers import running_intake, ticket_body

RESTART = os.environ.get("KLAXON_TEST_PG_RESTART", "pg_ctlcluster 15 main restart -m fast")
CLIENTS = 16
FILINGS_PER_CLIENT = 60


async def _restart_postgres() -> None:
    process = await asyncio.create_subprocess_exec(
        *shlex.split(RESTART), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, output.decode()


@pytest.mark.slow
async def test_a_postgres_restart_during_a_burst_of_filings_answers_503_never_500(
    env: Throwaway,
) -> None:
    statuses: collections.Counter[int] = collections.Counter()
    filed: dict[str, str] = {}
    async with running_intake(env, reconnect_max_s=1.0) as intake:

        async def portal(client_no: int) -> None:
            for n in range(FILINGS_PER_CLIENT):
                key = f"restart-{client_no}-{n}"
                headers = {**intake.auth(), "Idempotency-Key": key}
                body = ticket_body(subject=f"Burst {client_no}/{n}")
                deadline = time.monotonic() + 120
                while True:
                    response = await intake.client.post("/v1/tickets", json=body, headers=headers)
                    statuses[response.status_code] += 1
                    assert response.status_code in (201, 503), response.text
                    if response.status_code == 201:
                        filed[key] = response.json()["id"]
                        break
                    assert time.monotonic() < deadline, "still refused two minutes on"
                    await asyncio.sleep(float(response.headers["retry-after"]) / 4)

        burst = asyncio.gather(*(portal(i) for i in range(CLIENTS)))
        await asyncio.sleep(1.0)  # the burst is under way
        await _restart_postgres()
        await burst

        assert statuses[500] == 0
        assert statuses[503] > 0, "the restart fell outside the burst: nothing was tested"
        assert len(filed) == CLIENTS * FILINGS_PER_CLIENT
        assert len(set(filed.values())) == len(filed)  # a retry never filed twice
        assert await intake.count("ticket") == len(filed)
