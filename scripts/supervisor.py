"""Keep a set of processes running: a child that dies is restarted with backoff, and logged.

Used by ``scripts/devrun.py run`` (``make run``). Each child runs in a session of its own
(so stopping it stops everything it started) with its output appended to its log file. A
child that exits is started again after ``min_backoff_s``, doubling each time it dies
again up to ``max_backoff_s``; one that stayed up ``stable_after_s`` starts again from
the minimum. `stop_all` ends every child (SIGTERM to its process group, SIGKILL after a
grace period).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class ChildSpec:
    """How to run one child."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    cwd: Path | None = None


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    backoff_s: float = 0.0
    restarts: int = 0
    delays: list[float] = field(default_factory=list)


class Supervisor:
    """Start children, restart any that die (with backoff), stop them all on request."""

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        min_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        stable_after_s: float = 60.0,
        say: Callable[[str], None] = print,
        on_start: Callable[[ChildSpec, int], None] | None = None,
    ) -> None:
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stable_after_s = stable_after_s
        self.say = say
        self.on_start = on_start
        self._children = {spec.name: _Child(spec, backoff_s=min_backoff_s) for spec in children}

    def pid(self, name: str) -> int | None:
        """The process id of a running child, or None while it waits to restart."""
        process = self._children[name].process
        return process.pid if process is not None and process.poll() is None else None

    def restarts(self, name: str) -> int:
        """How many times a child was started again after it died."""
        return self._children[name].restarts

    def delays(self, name: str) -> list[float]:
        """The backoff before each restart of a child, in seconds."""
        return list(self._children[name].delays)

    def start_all(self) -> None:
        """Start every child."""
        for child in self._children.values():
            self._start(child)

    def _start(self, child: _Child) -> None:
        spec = child.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        if child.log is None:
            child.log = spec.log_path.open("ab")
        child.process = subprocess.Popen(  # noqa: S603 (commands are fixed by the caller)
            list(spec.argv),
            cwd=spec.cwd,
            env=dict(spec.env),
            stdin=subprocess.DEVNULL,
            stdout=child.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        if self.on_start is not None:
            self.on_start(spec, child.process.pid)

    def poll(self) -> None:
        """Notice children that died and restart those whose backoff is over."""
        now = time.monotonic()
        for child in self._children.values():
            process = child.process
            if process is not None and process.poll() is not None:
                if now - child.started_at >= self.stable_after_s:
                    child.backoff_s = self.min_backoff_s
                delay = child.backoff_s
                self.say(
                    f"{child.spec.name} exited (code {process.returncode}); restarting in "
                    f"{delay:.1f} s (log: {child.spec.log_path})"
                )
                child.process = None
                child.restart_at = now + delay
                child.delays.append(delay)
                child.backoff_s = min(delay * 2, self.max_backoff_s)
            elif child.process is None and child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._start(child)
                self.say(f"restarted {child.spec.name} (pid {self.pid(child.spec.name)})")

    def stop_all(self, timeout_s: float = 15.0) -> None:
        """Stop every child and close its log."""
        for child in reversed(list(self._children.values())):
            if child.process is not None and child.process.poll() is None:
                _stop_group(child.process, child.spec.name, timeout_s, self.say)
                self.say(f"stopped {child.spec.name}")
            child.process = None
            child.restart_at = None
            if child.log is not None:
                child.log.close()
                child.log = None


def _stop_group(
    process: subprocess.Popen[bytes], name: str, timeout_s: float, say: Callable[[str], None]
) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        say(f"{name} did not stop in {timeout_s:.0f} s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
