"""`make run`'s supervisor restarts a service that dies, with backoff, and stops them all."""

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from scripts.supervisor import ChildSpec, Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
CRASHER = [sys.executable, "-c", "raise SystemExit(3)"]


def _until(condition: Callable[[], bool], supervisor: Supervisor, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        supervisor.poll()
        time.sleep(0.02)


def _spec(name: str, argv: list[str], tmp_path: Path) -> ChildSpec:
    return ChildSpec(name=name, argv=argv, env=dict(os.environ), log_path=tmp_path / f"{name}.log")


def test_a_killed_service_is_restarted_and_the_others_keep_running(tmp_path: Path) -> None:
    said: list[str] = []
    supervisor = Supervisor(
        [_spec("intake", SLEEPER, tmp_path), _spec("notifier", SLEEPER, tmp_path)],
        min_backoff_s=0.1,
        say=said.append,
    )
    supervisor.start_all()
    try:
        killed, other = supervisor.pid("intake"), supervisor.pid("notifier")
        assert killed is not None
        assert other is not None
        os.kill(killed, signal.SIGKILL)
        _until(lambda: supervisor.restarts("intake") == 1, supervisor)
        assert supervisor.pid("intake") not in (None, killed)
        assert supervisor.pid("notifier") == other  # untouched
        assert any("intake exited" in line and "restarting in 0.1 s" in line for line in said)
    finally:
        supervisor.stop_all(timeout_s=5)
    assert supervisor.pid("intake") is None
    assert supervisor.pid("notifier") is None
    try:
        os.kill(other, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError("a child outlived stop_all")


def test_a_service_that_keeps_dying_is_restarted_ever_more_slowly(tmp_path: Path) -> None:
    supervisor = Supervisor(
        [_spec("monitor", CRASHER, tmp_path)],
        min_backoff_s=0.05,
        max_backoff_s=0.2,
        say=lambda _: None,
    )
    supervisor.start_all()
    try:
        _until(lambda: len(supervisor.delays("monitor")) >= 5, supervisor)
    finally:
        supervisor.stop_all(timeout_s=5)
    assert supervisor.delays("monitor")[:5] == [0.05, 0.1, 0.2, 0.2, 0.2]
