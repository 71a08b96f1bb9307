"""A strict InfluxDB line-protocol parser for the tests (independent of the device encoder).

parse_line(line) -> (measurement, {tag: value}, {field: value}, timestamp or None)
Integers come back as int, floats as float, booleans as bool, strings as str.
Raises ValueError on anything InfluxDB/Telegraf would reject.
"""

from __future__ import annotations


def _read(s: str, i: int, stops: str, escapable: str) -> tuple[str, int]:
    out = []
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s) and (s[i + 1] in escapable or s[i + 1] == "\\"):
            out.append(s[i + 1])
            i += 2
            continue
        if c in stops:
            break
        if c == "\n":
            raise ValueError("raw newline")
        out.append(c)
        i += 1
    return "".join(out), i


def _field_value(s: str, i: int) -> tuple[object, int]:
    if i < len(s) and s[i] == '"':
        out = []
        i += 1
        while True:
            if i >= len(s):
                raise ValueError("unterminated string field")
            c = s[i]
            if c == "\\" and i + 1 < len(s) and s[i + 1] in '"\\':
                out.append(s[i + 1])
                i += 2
            elif c == '"':
                return "".join(out), i + 1
            else:
                out.append(c)
                i += 1
    j = i
    while j < len(s) and s[j] not in ", ":
        j += 1
    raw = s[i:j]
    if not raw:
        raise ValueError(f"empty field value at {i}")
    if raw in ("t", "T", "true", "True", "TRUE"):
        return True, j
    if raw in ("f", "F", "false", "False", "FALSE"):
        return False, j
    if raw.endswith("i"):
        return int(raw[:-1]), j
    if raw.endswith("u"):
        return int(raw[:-1]), j
    v = float(raw)
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"non-finite float {raw}")
    return v, j


def parse_line(line: str):
    if not line or line.startswith("#") or "\n" in line:
        raise ValueError(f"not one line: {line!r}")
    m, i = _read(line, 0, ", ", ", ")
    if not m:
        raise ValueError("empty measurement")
    tags: dict[str, str] = {}
    while i < len(line) and line[i] == ",":
        k, i = _read(line, i + 1, ",= ", ",= ")
        if i >= len(line) or line[i] != "=":
            raise ValueError(f"tag without '=' at {i}")
        v, i = _read(line, i + 1, ", ", ",= ")
        if not k or not v:
            raise ValueError("empty tag key or value")
        tags[k] = v
    if i >= len(line) or line[i] != " ":
        raise ValueError(f"no field set at {i}")
    i += 1
    fields: dict[str, object] = {}
    while True:
        k, i = _read(line, i, ",= ", ",= ")
        if not k or i >= len(line) or line[i] != "=":
            raise ValueError(f"bad field key at {i}")
        v, i = _field_value(line, i + 1)
        fields[k] = v
        if i < len(line) and line[i] == ",":
            i += 1
            continue
        break
    ts = None
    if i < len(line):
        if line[i] != " ":
            raise ValueError(f"junk at {i}: {line[i:]!r}")
        ts = int(line[i + 1:])
    return m, tags, fields, ts
