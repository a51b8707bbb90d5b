"""ISO 8601 dates and durations as the CIB writes them (date_expression start/end, move lifetimes)."""
from __future__ import annotations

import calendar
import re

_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?"
                      r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?$")
_DURATION_RE = re.compile(
    r"^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def parse_datetime(text: str | None) -> int | None:
    """'2026-12-05 01:38:27Z', '2026-12-05T01:38:27 -05:00', '2026-12-05' -> seconds since the epoch
    (no offset given: UTC); None when malformed."""
    m = _DATE_RE.match((text or "").strip())
    if not m:
        return None
    y, mo, d, hh, mi, ss = (int(x or 0) for x in m.groups()[:6])
    if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1] and hh < 24 and mi < 60 and ss < 61):
        return None
    epoch = calendar.timegm((y, mo, d, hh, mi, ss, 0, 0, 0))
    tz = m.group(7)
    if tz and tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) >= 4 else 0)
        epoch -= sign * offset
    return epoch


def parse_duration(text: str | None) -> tuple | None:
    """ISO 8601 duration -> (months, seconds); None when malformed ("PT1H", "P1D", "P1Y2M", "P2W")."""
    m = _DURATION_RE.match((text or "").strip().upper())
    if not m:
        return None
    y, mo, w, d, h, mi, s = (int(x or 0) for x in m.groups())
    return y * 12 + mo, ((w * 7 + d) * 24 + h) * 3600 + mi * 60 + s


def utc_fields(epoch: int):
    """(year, month, day, hour, minute, second) in UTC, computed without the clock or the locale."""
    days, rem = divmod(int(epoch), 86400)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    z = days + 719468  # civil-from-days, proleptic Gregorian
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    mo = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if mo <= 2 else y), mo, d, hh, mm, ss


def add_duration(epoch: int, duration: tuple) -> int:
    """epoch + (months, seconds): months by the calendar (the day clamped to the month's last)."""
    months, seconds = duration
    if months:
        y, mo, d, hh, mm, ss = utc_fields(epoch)
        y, m0 = divmod(y * 12 + (mo - 1) + months, 12)
        d = min(d, calendar.monthrange(y, m0 + 1)[1])
        epoch = calendar.timegm((y, m0 + 1, d, hh, mm, ss, 0, 0, 0))
    return epoch + seconds


def format_time(epoch: int) -> str:
    """Seconds since the epoch as Pacemaker writes a date: '2026-12-05 01:38:27Z' (UTC)."""
    y, mo, d, hh, mm, ss = utc_fields(epoch)
    return f"{y:04d}-{mo:02d}-{d:02d} {hh:02d}:{mm:02d}:{ss:02d}Z"
