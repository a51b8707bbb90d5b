"""Scores with Pacemaker's INFINITY arithmetic: +/-1000000 clamping, -INFINITY wins."""
from __future__ import annotations


INFINITY = 1000000

_NAMED = {
    "INFINITY": INFINITY, "+INFINITY": INFINITY, "-INFINITY": -INFINITY,
    "red": 0, "yellow": 0, "green": 0,
}


def parse_score(text: str | None, default: int | None = 0) -> int | None:
    """Parse a score string ("100", "-INFINITY", "+INFINITY"); None if malformed."""
    if text is None:
        return default
    t = text.strip()
    if t in _NAMED:
        return _NAMED[t]
    if t.upper() in ("INFINITY", "+INFINITY", "INF", "+INF"):
        return INFINITY
    if t.upper() in ("-INFINITY", "-INF"):
        return -INFINITY
    try:
        value = int(t)
    except ValueError:
        try:
            value = int(float(t))
        except ValueError:
            return None
    return clamp(value)


def clamp(value: int) -> int:
    if value >= INFINITY:
        return INFINITY
    if value <= -INFINITY:
        return -INFINITY
    return value


def add_scores(a: int, b: int) -> int:
    """Add two scores: -INFINITY wins over +INFINITY, results clamped to +/-INFINITY."""
    if a <= -INFINITY or b <= -INFINITY:
        return -INFINITY
    if a >= INFINITY or b >= INFINITY:
        return INFINITY
    s = a + b
    if s >= INFINITY:
        return INFINITY
    if s <= -INFINITY:
        return -INFINITY
    return s


def score_text(score: int) -> str:
    """Render a score the way Pacemaker prints it."""
    if score >= INFINITY:
        return "INFINITY"
    if score <= -INFINITY:
        return "-INFINITY"
    return str(score)
