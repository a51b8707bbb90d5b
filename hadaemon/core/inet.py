"""Numeric IP addresses parsed and printed as glibc's inet_aton, inet_pton and inet_ntop do, without sockets."""

from __future__ import annotations

_HEX = "0123456789abcdefABCDEF"
_SPACE = " \t\n\v\f\r"


def _strtoul0(s: str, i: int):
    """C strtoul(s + i, &end, 0) for text starting with a digit: (value, end)."""
    if s.startswith(("0x", "0X"), i) and i + 2 < len(s) and s[i + 2] in _HEX:
        j = i + 2
        while j < len(s) and s[j] in _HEX:
            j += 1
        return int(s[i + 2:j], 16), j
    j = i
    digits = "01234567" if s[i] == "0" else "0123456789"
    while j < len(s) and s[j] in digits:
        j += 1
    return int(s[i:j], 8 if s[i] == "0" else 10), j


def inet_aton(s: str) -> int | None:
    """glibc inet_aton: 'a.b.c.d', 'a.b.c', 'a.b' or 'a', parts decimal, 0octal or 0xhex; None when invalid."""
    parts = []
    i = 0
    while True:
        if i >= len(s) or not s[i].isdigit() or not s[i].isascii():
            return None
        val, i = _strtoul0(s, i)
        if val > 0xFFFFFFFF:
            return None
        if i < len(s) and s[i] == ".":
            if len(parts) > 2 or val > 0xFF:
                return None
            parts.append(val)
            i += 1
            continue
        break
    if i < len(s) and s[i] not in _SPACE:     # glibc ignores anything after white space
        return None
    if val > (0xFFFFFFFF, 0xFFFFFF, 0xFFFF, 0xFF)[len(parts)]:
        return None
    n = 0
    for p in parts:
        n = n << 8 | p
    return n << 8 * (4 - len(parts)) | val


def ipv4_text(n: int) -> str:
    """inet_ntoa: the dotted quad of a 32-bit address."""
    return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def _pton4(s: str) -> bytes | None:
    """glibc inet_pton(AF_INET): exactly four decimal octets, no leading zeros."""
    octets = s.split(".")
    if len(octets) != 4:
        return None
    out = []
    for o in octets:
        if not o or not all("0" <= c <= "9" for c in o) or (len(o) > 1 and o[0] == "0") or int(o) > 255:
            return None
        out.append(int(o))
    return bytes(out)


def inet_pton6(s: str) -> bytes | None:
    """glibc inet_pton(AF_INET6): the 16 bytes of a textual IPv6 address, None when invalid."""
    if not s:
        return None
    i = 0
    if s[0] == ":":
        if len(s) < 2 or s[1] != ":":
            return None
        i = 1
    out = bytearray()
    colon_at = None
    curtok, digits, val = i, 0, 0
    while i < len(s):
        ch = s[i]
        i += 1
        if ch in _HEX:
            if digits == 4:
                return None
            val = val << 4 | int(ch, 16)
            digits += 1
            continue
        if ch == ":":
            curtok = i
            if digits == 0:
                if colon_at is not None:
                    return None
                colon_at = len(out)
                continue
            if i == len(s) or len(out) + 2 > 16:
                return None
            out += bytes((val >> 8, val & 255))
            digits, val = 0, 0
            continue
        if ch == "." and len(out) + 4 <= 16:
            v4 = _pton4(s[curtok:])
            if v4 is not None:
                out += v4
                digits = 0
                break
        return None
    if digits:
        if len(out) + 2 > 16:
            return None
        out += bytes((val >> 8, val & 255))
    if colon_at is not None:
        if len(out) == 16:
            return None
        out[colon_at:colon_at] = bytes(16 - len(out))
    return bytes(out) if len(out) == 16 else None


def inet_ntop6(b: bytes) -> str:
    """glibc inet_ntop(AF_INET6): the longest run (>= 2) of zero words as '::', IPv4-mapped/compatible dotted."""
    words = [b[i] << 8 | b[i + 1] for i in range(0, 16, 2)]
    best_base, best_len, cur_base, cur_len = -1, 0, -1, 0
    for i, w in enumerate(words + [1]):       # the sentinel closes a trailing run
        if w == 0:
            if cur_base == -1:
                cur_base, cur_len = i, 0
            cur_len += 1
        elif cur_base != -1:
            if best_base == -1 or cur_len > best_len:
                best_base, best_len = cur_base, cur_len
            cur_base = -1
    if best_len < 2:
        best_base = -1
    out = ""
    for i, w in enumerate(words):
        if best_base != -1 and best_base <= i < best_base + best_len:
            if i == best_base:
                out += ":"
            continue
        if i:
            out += ":"
        if i == 6 and best_base == 0 and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF)):
            return out + ".".join(str(x) for x in b[12:])
        out += f"{w:x}"
    if best_base != -1 and best_base + best_len == 8:
        out += ":"
    return out


def canonical_ipv6(s: str) -> str | None:
    """inet_ntop(inet_pton(s)) for AF_INET6, None when `s` is not an IPv6 address."""
    b = inet_pton6(s)
    return None if b is None else inet_ntop6(b)
