# InfluxDB line protocol encoder (SPEC §5): what Telegraf's mqtt_consumer with
# data_format=influx accepts on `sensors/#`.
#
#   measurement,tag=v,tag=v field=1.5,count=3i,ok=true,msg="x" 1700000000000000000
#
# Field types are declared, not guessed per reading, because InfluxDB rejects a
# field whose type changes (a float that happens to be 21.0 must stay a float).

FLOAT = "f"
INT = "i"
BOOL = "b"
STR = "s"


class LineError(ValueError):
    pass


def _check(s, what):
    if not isinstance(s, str):
        raise LineError("%s must be a string, not %s" % (what, type(s).__name__))
    if not s:
        raise LineError("%s is empty" % what)
    # A raw newline would end the line early and inject another one.
    if "\n" in s or "\r" in s:
        raise LineError("%s %r contains a newline" % (what, s))


def _esc(s, specials):
    # Fast path: most names need no escaping, so no new string is built.
    for c in specials:
        if c in s:
            break
    else:
        if "\\" not in s:
            return s
    out = []
    for c in s:
        if c in specials or c == "\\":
            out.append("\\")
        out.append(c)
    return "".join(out)


def measurement(name):
    """Measurement name: commas and spaces escaped."""
    _check(name, "measurement")
    if name[0] == "#":
        # a leading # makes the line a comment for the parser
        raise LineError("measurement %r starts with #" % name)
    return _esc(name, ", ")


def key(name, what="key"):
    """Tag key, tag value or field key: commas, '=' and spaces escaped."""
    _check(name, what)
    return _esc(name, ",= ")


def string_field(s):
    """String field value: double-quoted, with '"' and '\\' escaped."""
    if not isinstance(s, str):
        raise LineError("string field must be a string, not %s" % type(s).__name__)
    if "\n" in s or "\r" in s:
        # Telegraf reads a raw newline as the end of the line; keep the text readable.
        s = s.replace("\r", " ").replace("\n", " ")
    if '"' in s or "\\" in s:
        s = s.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + s + '"'


def value(v, kind):
    """One field value encoded as `kind`; a value that cannot be that type is an error."""
    if kind == FLOAT:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise LineError("float field got %r" % (v,))
        f = float(v)
        if f != f or f in (float("inf"), float("-inf")):
            raise LineError("float field got %r (not representable)" % (v,))
        r = repr(f)
        # '21' would be fine for the parser, but we keep floats visibly floats
        if "." not in r and "e" not in r and "n" not in r:
            r += ".0"
        return r
    if kind == INT:
        if isinstance(v, bool):
            raise LineError("integer field got %r" % (v,))
        if isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                raise LineError("integer field got %r" % (v,))
            v = int(v)
        if not isinstance(v, int):
            raise LineError("integer field got %r" % (v,))
        if v >= 9223372036854775808 or v < -9223372036854775808:
            raise LineError("integer field %d is out of int64 range" % v)
        return "%di" % v
    if kind == BOOL:
        if not isinstance(v, bool):
            raise LineError("boolean field got %r" % (v,))
        return "true" if v else "false"
    if kind == STR:
        return string_field(v)
    raise LineError("unknown field type %r" % (kind,))


def kind_of(v):
    """Type of a Python value, for fields without a declared type."""
    if isinstance(v, bool):
        return BOOL
    if isinstance(v, int):
        return INT
    if isinstance(v, float):
        return FLOAT
    if isinstance(v, str):
        return STR
    raise LineError("unsupported field value %r" % (v,))


def encode(name, tags, fields, ts_ns=None, types=None):
    """One line, without the trailing newline.

    tags: sequence of (key, value) pairs, written sorted by key as InfluxDB recommends.
    fields: sequence of (key, value) pairs; None values are left out.
    types: dict field -> FLOAT/INT/BOOL/STR fixing each field's type.
    ts_ns: nanosecond Unix time, or None to let the server stamp it.
    """
    parts = [measurement(name)]
    for k, v in sorted(tags):
        if v is None:
            continue
        if not isinstance(v, str):
            v = str(v)
        parts.append("," + key(k, "tag key") + "=" + key(v, "tag value"))
    sep = " "
    n = 0
    for k, v in fields:
        if v is None:
            continue
        kind = types.get(k) if types else None
        parts.append(sep + key(k, "field key") + "=" + value(v, kind or kind_of(v)))
        sep = ","
        n += 1
    if not n:
        raise LineError("%s: a line needs at least one field" % name)
    if ts_ns is not None:
        if not isinstance(ts_ns, int) or isinstance(ts_ns, bool):
            raise LineError("timestamp must be an integer number of ns")
        parts.append(" %d" % ts_ns)
    return "".join(parts)
