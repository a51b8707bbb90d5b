"""ISO 8601 dates and durations as the CIB writes them (date_expression start/end, move lifetimes)."""
from __future__ import annotations

# re and calendar are imported by the functions that parse dates: most CIBs have none, and both cost start-up time
_DATE_RE = (r"^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?"
            r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?$")
_DURATION_RE = r"^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$"


def parse_datetime(text: str | None) -> int | None:
    """'2026-12-05 01:38:27Z', '2026-12-05T01:38:27 -05:00', '2026-12-05' -> seconds since the epoch
    (no offset given: UTC); None when malformed."""
    import calendar
    import re

    m = re.match(_DATE_RE, (text or "").strip())
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
    import re

    m = re.match(_DURATION_RE, (text or "").strip().upper())
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
        import calendar

        y, mo, d, hh, mm, ss = utc_fields(epoch)
        y, m0 = divmod(y * 12 + (mo - 1) + months, 12)
        d = min(d, calendar.monthrange(y, m0 + 1)[1])
        epoch = calendar.timegm((y, m0 + 1, d, hh, mm, ss, 0, 0, 0))
    return epoch + seconds


def format_time(epoch: int) -> str:
    """Seconds since the epoch as Pacemaker writes a date: '2026-12-05 01:38:27Z' (UTC)."""
    y, mo, d, hh, mm, ss = utc_fields(epoch)
    return f"{y:04d}-{mo:02d}-{d:02d} {hh:02d}:{mm:02d}:{ss:02d}Z"


SPEC_FIELDS = ("years", "months", "monthdays", "hours", "minutes", "seconds", "yeardays", "weekyears", "weeks",
               "weekdays", "moon")
_DURATION_FIELDS = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")
_RANGE_RE = r"^\s*(\d+)?\s*(-)?\s*(\d+)?\s*$"


def parse_range(text: str):
    """A date_spec field: 'N' or 'N-M' (either side may be left out: 'N-', '-M') -> (low, high)."""
    import re

    m = re.match(_RANGE_RE, text or "")
    if not m or (m.group(1) is None and m.group(3) is None) or (m.group(2) is None and m.group(3) is not None):
        return None
    low = None if m.group(1) is None else int(m.group(1))
    if m.group(2) is None:
        return low, low
    return low, (None if m.group(3) is None else int(m.group(3)))


def date_expression_of(el):
    """(problem, DateExpression) from a <date_expression> element (anything with get/find): problem is a
    message when the expression cannot be read, else None. Shared by the loader and verify."""
    from hadaemon.core.cib.model import DateExpression
    op = el.get("operation") or "in_range"
    did = el.get("id", "")
    if op not in ("lt", "gt", "in_range", "date_spec"):
        return f"date_expression '{did}' has operation '{op}': expected lt, gt, in_range or date_spec", None
    bounds = {}
    for name in ("start", "end"):
        text = el.get(name)
        bounds[name] = None if text is None else parse_datetime(text)
        if text is not None and bounds[name] is None:
            return (f"date_expression '{did}' has an invalid {name} '{text}' (ISO 8601, e.g. 2026-12-05 01:38:27Z)",
                    None)
    duration = None
    dur = el.find("duration")
    if dur is not None:
        months = seconds = 0
        scale = {"years": (12, 0), "months": (1, 0), "weeks": (0, 604800), "days": (0, 86400),
                 "hours": (0, 3600), "minutes": (0, 60), "seconds": (0, 1)}
        for name in _DURATION_FIELDS:
            text = dur.get(name)
            if text is None:
                continue
            try:
                n = int(text.strip())
            except ValueError:
                return f"date_expression '{did}': duration {name} '{text}' is not an integer", None
            months += n * scale[name][0]
            seconds += n * scale[name][1]
        duration = (months, seconds)
    spec = []
    sp = el.find("date_spec")
    if sp is not None:
        for name in SPEC_FIELDS:
            text = sp.get(name)
            if text is None:
                continue
            rng = parse_range(text)
            if rng is None:
                return f"date_expression '{did}': date_spec {name} '{text}' is not a number or range (e.g. 9-16)", None
            spec.append((name, rng[0], rng[1]))
    need = {"lt": "end", "gt": "start"}.get(op)
    if need and bounds[need] is None:
        return f"date_expression '{did}' ({op}) needs '{need}'", None
    if op == "in_range":
        if bounds["start"] is None and bounds["end"] is None:
            return f"date_expression '{did}' (in_range) needs 'start' or 'end'", None
        if bounds["end"] is None and duration is not None:
            bounds["end"] = add_duration(bounds["start"], duration)
    if op == "date_spec" and sp is None:
        return f"date_expression '{did}' (date_spec) needs a <date_spec>", None
    return None, DateExpression(did, op, bounds["start"], bounds["end"], el.line, duration, tuple(spec))


def iso_week(epoch: int):
    """(ISO week-year, ISO week, ISO weekday 1=Monday..7, day of the year) in UTC."""
    import calendar

    y, mo, d = utc_fields(epoch)[:3]
    days = int(epoch) // 86400
    weekday = (days + 3) % 7 + 1  # 1970-01-01 was a Thursday (4)
    yday = days - calendar.timegm((y, 1, 1, 0, 0, 0, 0, 0, 0)) // 86400 + 1
    thursday = days - weekday + 4  # the Thursday of this ISO week decides its year
    wy = utc_fields(thursday * 86400)[0]
    week = (thursday - calendar.timegm((wy, 1, 1, 0, 0, 0, 0, 0, 0)) // 86400) // 7 + 1
    return wy, week, weekday, yday


def moon_phase(year: int, yday: int) -> int:
    """The phase of the moon, 0 (new) to 7, 4 full, as Pacemaker 2.1's phase_of_the_moon computes it from
    the year and the day of the year (its deprecated date_spec field `moon`, gone in Pacemaker 3)."""
    goldn = year % 19 + 1
    epact = (11 * goldn + 18) % 30
    if (epact == 25 and goldn > 11) or epact == 24:
        epact += 1
    return ((((yday + epact) * 6) + 11) % 177 // 22) & 7


def spec_matches(spec, epoch: int) -> bool:
    """Whether time epoch (UTC) matches every field of a date_spec ((field, low, high), open sides None)."""
    y, mo, d, hh, mm, ss = utc_fields(epoch)
    wy, week, weekday, yday = iso_week(epoch)
    values = {"years": y, "months": mo, "monthdays": d, "hours": hh, "minutes": mm, "seconds": ss,
              "yeardays": yday, "weekyears": wy, "weeks": week, "weekdays": weekday,
              "moon": moon_phase(y, yday)}
    for name, low, high in spec:
        v = values[name]
        if (low is not None and v < low) or (high is not None and v > high):
            return False
    return True
