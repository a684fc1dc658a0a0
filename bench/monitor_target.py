"""bench/monitor.py's helper processes: the HTTP target the monitors check, and the bare
httpx loop it is compared with.

The target is a minimal asyncio HTTP server answering 200 to every path. It counts
requests; a request repeating a (path, ``X-Klaxon-Due``) pair already seen is a
duplicate check. Control paths: ``/_stats?since=`` (counters, schedule lag p50/p99 and
how many paths were requested since then), ``/_lags`` (forget the lags),
``/_fail?path=`` (that path answers 500 from now on), ``/_forget`` (forget when each path
was last requested).
"""

import asyncio
import contextlib
import json
import resource
import time

import httpx

from bench.measure import percentile


def serve_target(port: int) -> None:
    """Run the target server until killed."""
    seen: set[tuple[str, str]] = set()
    last_seen: dict[str, float] = {}
    failing: set[str] = set()
    stats = {"requests": 0, "checks": 0, "duplicates": 0}
    lags: list[float] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                target = line.split(b" ", 2)[1].decode()
                due = ""
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    if header[:13].lower() == b"x-klaxon-due:":
                        due = header[13:].strip().decode()
                path, _, query = target.partition("?")
                status, body = 200, b"ok"
                if path == "/_stats":
                    since = float(query.partition("=")[2] or 0)
                    fresh = sum(1 for t in last_seen.values() if t >= since)
                    lag = {
                        "lag_p50_s": percentile(lags, 0.5) if lags else None,
                        "lag_p99_s": percentile(lags, 0.99) if lags else None,
                    }
                    body = json.dumps(
                        {**stats, **lag, "paths": len(last_seen), "fresh": fresh}
                    ).encode()
                elif path == "/_lags":
                    lags.clear()
                elif path == "/_fail":
                    failing.add(query.partition("=")[2])
                elif path == "/_forget":
                    last_seen.clear()
                else:
                    stats["requests"] += 1
                    last_seen[path] = time.time()
                    if due:
                        stats["checks"] += 1
                        lags.append(max(0.0, time.time() - float(due)))
                        if (path, due) in seen:
                            stats["duplicates"] += 1
                        seen.add((path, due))
                    if path in failing:
                        status, body = 500, b"down"
                writer.write(
                    b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)
                )
                await writer.drain()
        except (ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def run_baseline(url: str, n: int, interval_s: float, duration_s: float) -> None:
    """N concurrent loops, each GETting its path once per interval; prints its cost."""

    async def main() -> dict[str, float]:
        done = 0
        async with httpx.AsyncClient(
            limits=httpx.Limits(max_connections=500, max_keepalive_connections=200), timeout=10
        ) as client:
            start = time.monotonic()
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)

            async def one(i: int) -> None:
                nonlocal done
                due = start + interval_s * i / n
                while due < start + duration_s:
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    with contextlib.suppress(httpx.HTTPError):
                        await client.get(f"{url}/b{i}")
                        done += 1
                    due += interval_s

            await asyncio.gather(*(one(i) for i in range(n)))
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        return {"requests": done, "cpu_s": cpu}

    print(json.dumps(asyncio.run(main())))
