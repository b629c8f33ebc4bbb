"""Claims that let several worker processes share one list of runs (``experiments/ear_adaptation.py``,
``experiments/atari_table.py``): a worker takes a run by holding its lock file, skips the runs others
hold, and at the end waits for them. ``flock`` is released by the OS when a worker dies, so a killed
worker's run is simply resumed (from its ``last.ckpt``) by the next worker that claims it.

``--stop-by HH:MM`` (:func:`stop_by_clock`): a worker claims only the runs its estimate says end by
then, since a run cut by the end of a session is lost when the next session starts on a fresh machine."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def claimed(lock: Path, wait: bool) -> Iterator[bool]:
    """Hold ``lock`` while the block runs; yields False (without waiting) when another process holds
    it and ``wait`` is off."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stop_by_clock(text: str) -> float:
    """``HH:MM`` → the epoch seconds of its next occurrence (within 24 h; local time)."""
    try:
        hour, minute = (int(x) for x in text.split(":"))
        now = datetime.datetime.now()
        at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--stop-by takes HH:MM (local time), got {text!r}") from error
    if at <= now:
        at += datetime.timedelta(days=1)
    return at.timestamp()
