"""What every retrying loop (outbox relay, timer worker, delivery worker) shares: how long
to wait after a failure, and a failure as text a row can keep."""

import secrets

MAX_BACKOFF_EXPONENT = 64
"""Doubling further changes no delay under any sane cap, and ``2**1024`` overflows a float."""

MAX_ERROR_CHARS = 2000
"""Enough to diagnose a failure without letting one huge message bloat a row."""

_JITTER = secrets.SystemRandom()


def backoff_s(failures: int, *, base_s: float, max_s: float, jitter: bool = False) -> float:
    """The wait after `failures` failed attempts: ``min(base * 2**(failures - 1), max)``,
    finite however many have failed; with `jitter`, drawn from the upper half of that,
    so retries that failed together do not come back together."""
    exponent = min(max(failures - 1, 0), MAX_BACKOFF_EXPONENT)
    ceiling = float(min(base_s * 2**exponent, max_s))
    if jitter:
        return ceiling / 2 + _JITTER.uniform(0, ceiling / 2)
    return ceiling


def error_text(exc: BaseException) -> str:
    """`exc` as text Postgres can store: no NUL, valid UTF-8, bounded length.

    Errors often quote what a provider sent back, which may hold anything.
    """
    try:
        message = f"{type(exc).__name__}: {exc}"
    except Exception:
        message = type(exc).__name__
    message = message.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return message[:MAX_ERROR_CHARS]
