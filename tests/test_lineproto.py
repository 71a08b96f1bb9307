"""Line-protocol encoder, run under the MicroPython Unix port (SPEC §5 escaping rules)."""

import json

import pytest

from lineparse import parse_line

# (measurement, tags, fields, types, ts) -> expected line, written out by hand
CASES = [
    ("env", [("device", "perch-a1b2c3"), ("sensor", "bme280")],
     [("temperature", 21.5), ("humidity", 40)], {"humidity": "f"}, 1700000000123456789,
     "env,device=perch-a1b2c3,sensor=bme280 temperature=21.5,humidity=40.0 "
     "1700000000123456789"),
    # measurement: commas and spaces escaped, '=' is not
    ("my meas,x=y", [], [("v", 1)], None, None, "my\\ meas\\,x=y v=1i"),
    # tag keys and values: commas, '=' and spaces escaped
    ("m", [("a key", "v,a=l ue"), ("k=,", "x")], [("f", True)], None, None,
     "m,a\\ key=v\\,a\\=l\\ ue,k\\=\\,=x f=true"),
    # tags are sorted by key
    ("m", [("z", "1"), ("a", "2")], [("f", False)], None, None, "m,a=2,z=1 f=false"),
    # field keys: commas, '=' and spaces escaped
    ("m", [], [("f k,=", 2.0)], None, 5, "m f\\ k\\,\\==2.0 5"),
    # string fields: double quotes and backslashes escaped; commas/spaces/= kept
    ("m", [], [("s", 'say "hi", a=b \\ c')], None, None, 'm s="say \\"hi\\", a=b \\\\ c"'),
    # integers carry i, negative too; declared int from a float reading is truncated
    ("m", [], [("n", -42), ("c", 3.9)], {"c": "i"}, None, "m n=-42i,c=3i"),
    # None fields are left out
    ("m", [], [("a", None), ("b", 7)], None, None, "m b=7i"),
    # backslash in names is escaped so the parser reads it back literally
    ("m\\x", [("t", "a\\b")], [("f", 1)], None, None, "m\\\\x,t=a\\\\b f=1i"),
    # unicode is kept as is
    ("m", [("loc", "küche")], [("s", "°C")], None, None, 'm,loc=küche s="°C"'),
]

ERRORS = [
    ("", [], [("f", 1)], None, None, "measurement is empty"),
    ("m", [], [], None, None, "needs at least one field"),
    ("m", [("t", "")], [("f", 1)], None, None, "tag value is empty"),
    ("m\nx", [], [("f", 1)], None, None, "contains a newline"),
    ("m", [], [("f", float("nan"))], None, None, "not representable"),
    ("m", [], [("f", "x")], {"f": "f"}, None, "float field got"),
    ("m", [], [("f", 1.5)], {"f": "b"}, None, "boolean field got"),
    ("#m", [], [("f", 1)], None, None, "starts with #"),
]


def _snippet(cases):
    return (
        "import json\nfrom perch import lineproto as lp\nout=[]\n"
        f"for m,t,f,ty,ts in json.loads({json.dumps(json.dumps(cases))}):\n"
        "    t=[tuple(x) for x in t]; f=[tuple(x) for x in f]\n"
        "    f=[(k, float('nan') if v=='NaN' else v) for k,v in f]\n"
        "    try:\n        out.append(['ok', lp.encode(m,t,f,ts,ty)])\n"
        "    except lp.LineError as e:\n        out.append(['err', str(e)])\n"
        "print(json.dumps(out))\n")


def test_encoder_escaping_rules(mpy):
    got = _json(mpy, _snippet([c[:5] for c in CASES]))
    for case, (status, line) in zip(CASES, got):
        assert status == "ok", (case, line)
        assert line == case[5]
        parse_line(line)  # the independent parser reads it back


def test_encoder_roundtrip_through_parser(mpy):
    got = _json(mpy, _snippet([c[:5] for c in CASES]))
    m, tags, fields, ts = parse_line(got[2][1])
    assert m == "m" and tags == {"a key": "v,a=l ue", "k=,": "x"} and fields == {"f": True}
    m, tags, fields, ts = parse_line(got[5][1])
    assert fields == {"s": 'say "hi", a=b \\ c'}
    m, tags, fields, ts = parse_line(got[1][1])
    assert m == "my meas,x=y"


@pytest.mark.parametrize("case", ERRORS, ids=[e[5] for e in ERRORS])
def test_encoder_rejects_bad_input(mpy, case):
    c = list(case[:5])
    c[2] = [(k, "NaN" if v != v else v) for k, v in c[2]]
    [(status, msg)] = _json(mpy, _snippet([c]))
    assert status == "err"
    assert case[5] in msg


def _json(mpy, code, **kw):
    r = mpy(code, **kw)
    assert r.returncode == 0, "micropython failed:\n%s\n%s" % (r.out, r.err)
    return r.json()
