"""Schedules as data, DrQ-v2 style: ``"0.2"`` (constant), ``"linear(1.0,0.1,100000)"``
(from 1.0 to 0.1 over 100 000 steps, then flat), ``"step_linear(1.0,0.5,1000,0.1,5000)"``."""

from __future__ import annotations

import re

_LINEAR = re.compile(r"^linear\(([^,]+),([^,]+),([^,]+)\)$")
_STEP_LINEAR = re.compile(r"^step_linear\(([^,]+),([^,]+),([^,]+),([^,]+),([^,]+)\)$")


def parse_schedule(spec: str | float) -> None:
    """Raise ``ValueError`` naming the accepted forms unless ``spec`` is a valid schedule."""
    schedule(spec, 0)


def schedule(spec: str | float, step: int) -> float:
    """The value of schedule ``spec`` at ``step``."""
    if isinstance(spec, (int, float)):
        return float(spec)
    text = spec.replace(" ", "")
    try:
        return float(text)
    except ValueError:
        pass
    if match := _LINEAR.match(text):
        start, end, duration = (float(g) for g in match.groups())
        mix = min(max(step / duration, 0.0), 1.0)
        return (1.0 - mix) * start + mix * end
    if match := _STEP_LINEAR.match(text):
        v0, v1, d1, v2, d2 = (float(g) for g in match.groups())
        if step <= d1:
            return (1.0 - step / d1) * v0 + step / d1 * v1
        mix = min((step - d1) / d2, 1.0)
        return (1.0 - mix) * v1 + mix * v2
    raise ValueError(
        f"unknown schedule {spec!r}: use a number, 'linear(start,end,steps)' or 'step_linear(v0,v1,steps1,v2,steps2)'"
    )
