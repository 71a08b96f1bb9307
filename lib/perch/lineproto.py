# InfluxDB line protocol encoder (SPEC §5): what Telegraf's mqtt_consumer with
# data_format=influx accepts on `sensors/#`.
#
#   measurement,tag=v,tag=v field=1.5,count=3i,ok=true,msg="x" 1700000000000000000
#
# A field's type is declared, or else taken from the Python value: InfluxDB rejects a field
# whose type changes, so a float that happens to be 21.0 must stay a float (drivers hand
# out float() and int() values, so their types never change).

FLOAT = "f"
INT = "i"
BOOL = "b"
STR = "s"


class LineError(ValueError):
    pass


def _name(s, what, specials=",= "):
    # measurement (specials ", "), tag key, tag value or field key, escaped
    if not isinstance(s, str):
        raise LineError("%s must be a string, not %s" % (what, type(s).__name__))
    if not s:
        raise LineError("%s is empty" % what)
    # a raw newline would end the line early and inject another one
    if "\n" in s or "\r" in s:
        raise LineError("%s %r contains a newline" % (what, s))
    for c in "\\" + specials:  # the backslash first: the others add backslashes
        if c in s:
            s = s.replace(c, "\\" + c)
    return s


def _value(v, kind):
    b = isinstance(v, bool)
    num = not b and isinstance(v, (int, float))
    if not kind:
        kind = BOOL if b else INT if isinstance(v, int) else FLOAT if num else STR
    if kind == STR and isinstance(v, str):
        # Telegraf reads a raw newline as the end of the line; keep the text readable
        return '"%s"' % v.replace("\r", " ").replace("\n", " ").replace(
            "\\", "\\\\").replace('"', '\\"')
    if kind == BOOL and b:
        return "true" if v else "false"
    if num and kind in (FLOAT, INT):
        if v != v or v in (float("inf"), float("-inf")):
            raise LineError("field got %r (not representable)" % (v,))
        if kind == INT:
            v = int(v)
            if not -9223372036854775808 <= v < 9223372036854775808:
                raise LineError("integer field %d is out of int64 range" % v)
            return "%di" % v
        r = repr(float(v))
        # '21' would be fine for the parser, but we keep floats visibly floats
        return r if "." in r or "e" in r else r + ".0"
    if kind not in "fibs":
        raise LineError("unknown field type %r" % (kind,))
    raise LineError("%s field got %r"
                    % (("float", "integer", "boolean", "string")["fibs".find(kind)], v))


def prefix(name, tags):
    """Measurement and tags: (key, value) pairs, written sorted by key as InfluxDB advises."""
    if isinstance(name, str) and name[:1] == "#":
        # a leading # makes the line a comment for the parser
        raise LineError("measurement %r starts with #" % name)
    out = _name(name, "measurement", ", ")
    for k, v in sorted(tags):
        if v is not None:
            out += ",%s=%s" % (_name(k, "tag key"), _name(str(v), "tag value"))
    return out


def line(pre, fields, ts_ns=None, types=None):
    """prefix() + fields + timestamp: one line, without the trailing newline.

    fields: (key, value) pairs, None values left out; types: {field: FLOAT/INT/BOOL/STR};
    ts_ns: nanosecond Unix time, or None to let the server stamp it.
    """
    out = [pre]
    sep = " "
    for k, v in fields:
        if v is not None:
            out.append("%s%s=%s" % (sep, _name(k, "field key"),
                                    _value(v, types.get(k) if types else None)))
            sep = ","
    if sep == " ":
        raise LineError("%s: a line needs at least one field" % pre)
    if ts_ns is not None:
        if not isinstance(ts_ns, int) or isinstance(ts_ns, bool):
            raise LineError("timestamp must be an integer number of ns")
        out.append(" %d" % ts_ns)
    return "".join(out)


def encode(name, tags, fields, ts_ns=None, types=None):
    """One line, without the trailing newline (see prefix() and line())."""
    return line(prefix(name, tags), fields, ts_ns, types)
