"""Offline buffer under the MicroPython Unix port: bound, drop-oldest, order, spool, and the
binary records it keeps readings in (published as line protocol, exactly as read)."""

import json

from lineparse import parse_line

# reading i is source "r" with the field v=i: the line "r v=<i>i", num() gives i back
PRE = ("from perch.outbox import Outbox as _O\n"
       "def Outbox(*a):\n    o = _O(*a); o.source('r'); return o\n"
       "def put(o, i): o.put(0, (('v', i),))\n"
       "def num(b): return int(b.decode()[4:-1])\n")



def test_bounded_drop_oldest_in_order(mpy):
    got = _json(mpy,
        "import json\n" + PRE +
        "o = Outbox(5)\n"
        "for i in range(12): put(o, i)\n"
        "st = o.stats()\n"
        "out = []\n"
        "while o.peek() is not None:\n"
        "    out.append(num(o.peek())); o.pop()\n"
        "print(json.dumps([st, out, o.stats()]))\n")
    st, out, after = got
    assert st == {"queued": 5, "sent": 0, "dropped": 7}
    assert out == [7, 8, 9, 10, 11]
    assert after == {"queued": 0, "sent": 5, "dropped": 7}


def test_peek_without_pop_keeps_item(mpy):
    got = _json(mpy,
        "import json\n" + PRE +
        "o = Outbox(3)\nput(o, 1); put(o, 2)\n"
        "x = [o.peek(), o.peek()]\no.pop()\nx.append(o.peek())\n"
        "print(json.dumps([num(v) for v in x] + [len(o)]))\n")
    assert got == [1, 1, 2, 1]


def test_zero_size_rejected(mpy):
    got = _json(mpy,
        "import json\n" + PRE +
        "try:\n    Outbox(0); r = 'accepted'\nexcept ValueError as e:\n    r = str(e)\n"
        "print(json.dumps(r))\n")
    assert "mqtt.buffer" in got


def test_wait_wakes_on_put(mpy):
    got = _json(mpy,
        "import json, asyncio\n" + PRE +
        "o = Outbox(3)\nlog = []\n"
        "async def consumer():\n"
        "    await o.wait(); log.append(num(o.peek()))\n"
        "async def main():\n"
        "    t = asyncio.create_task(consumer())\n"
        "    await asyncio.sleep_ms(20); log.append('before')\n"
        "    put(o, 5); await asyncio.sleep_ms(20)\n"
        "asyncio.run(main())\nprint(json.dumps(log))\n")
    assert got == ["before", 5]


def test_spool_keeps_overflow_on_flash_and_replays_in_order(mpy, tmp_path):
    code = (
        "import json\n" + PRE +
        "o = Outbox(3, 'spool.dat', 4)\n"
        "for i in range(10): put(o, i)\n"
        "print(json.dumps([o.stats(), o.spool.count]))\n")
    st, spooled = _json(mpy, code, cwd=tmp_path)
    # 3 in RAM, 4 on flash, the 3 oldest dropped
    assert st == {"queued": 7, "sent": 0, "dropped": 3}
    assert spooled == 4
    # a reboot: the spool is still there and comes out first, in order
    code2 = (
        "import json\n" + PRE +
        "o = Outbox(3, 'spool.dat', 4)\n"
        "n = len(o)\nput(o, 99)\nout = []\n"
        "while o.peek() is not None:\n"
        "    out.append(num(o.peek())); o.pop()\n"
        "import os\n"
        "print(json.dumps([n, out, 'spool.dat' in os.listdir()]))\n")
    n, out, exists = _json(mpy, code2, cwd=tmp_path)
    assert n == 4
    assert out == [3, 4, 5, 6, 99]
    assert not exists  # drained spool is removed


def test_spool_compacts_and_survives_partial_line(mpy, tmp_path):
    code = (
        "import json, os\n" + PRE +
        "o = Outbox(1, 'sp', 50)\n"
        "for i in range(2000): put(o, i)\n"
        "size = os.stat('sp')[6]\n"
        "print(json.dumps([o.stats(), size]))\n")
    st, size = _json(mpy, code, cwd=tmp_path)
    assert st["queued"] == 51 and st["dropped"] == 2000 - 51
    assert size < 16384 + 51 * 20  # compacted, not 2000 lines long
    with open(tmp_path / "sp", "ab") as f:
        f.write(b"torn-li")  # power cut in the middle of an append
    out = _json(mpy,
        "import json\n" + PRE +
        "o = Outbox(1, 'sp', 50)\nfirst = num(o.peek())\n"
        "put(o, 1); put(o, 2)\nout = []\n"
        "while o.peek() is not None:\n"
        "    out.append(num(o.peek())); o.pop()\n"
        "print(json.dumps([first, out[-3:], len(out)]))\n", cwd=tmp_path)
    # the torn bytes are gone; nothing glued onto them
    assert out == [1949, [1998, 1, 2], 51]


def _json(mpy, code, **kw):
    r = mpy(code, **kw)
    assert r.returncode == 0, "micropython failed:\n%s\n%s" % (r.out, r.err)
    return r.json()


def test_drop_of_the_item_in_flight_does_not_lose_the_next(mpy):
    # the uplink peeks the oldest and waits for its PUBACK; meanwhile the buffer overflows
    # and drops that very item; once acknowledged it counts as sent, and nothing else goes
    got = _json(mpy,
        "import json\n" + PRE +
        "o = Outbox(2)\nput(o, 1); put(o, 2)\n"
        "inflight = num(o.peek())\n"
        "put(o, 3)\n"  # drops 1, in flight
        "o.pop()\n"  # 1 was acknowledged after all
        "rest = []\n"
        "while o.peek() is not None:\n"
        "    rest.append(num(o.peek())); o.pop()\n"
        "print(json.dumps([inflight, rest, o.stats()]))\n")
    assert got == [1, [2, 3], {"queued": 0, "sent": 3, "dropped": 0}]


# (fields, ts) readings, each row a source "env,device=d1,sensor=x y=1"; each line must be what
# lineproto.encode() writes for the same reading (the text published before records)
READINGS = [
    ([("t", 21.3), ("h", 41.0009765625), ("p", 1002.535)], 1700000000123456789),
    ([("t", 0.1 + 0.2), ("n", 0), ("m", -1), ("big", 2 ** 40), ("min", -2 ** 63)], None),
    ([("max", 2 ** 63 - 1), ("b", True), ("f", False), ("x", None), ("z", 21.0)], 5),
    ([("tiny", 1e-7), ("huge", 3.4e39), ("neg", -273.15), ("k y,=", 127), ("w", -128)], 1),
    ([("t", 1 / 3), ("f32", 0.5), ("m", 16777217.0), ("s", 255), ("t2", 256)], 2 ** 62),
]


def test_records_give_back_exactly_the_line_of_the_reading(mpy):
    # through a small ring, many times over, so that records are cut by the ring's end too
    got = _json(mpy,
        "import json, math\nfrom perch.outbox import Outbox\nfrom perch import lineproto\n"
        f"R = json.loads({json.dumps(json.dumps(READINGS))})\n"
        "o = Outbox(3)\n"
        "for r in R: o.source(lineproto.prefix('env', (('device', 'd1'), ('sensor', 'x'))))\n"
        "bad = []\nexp = []\n"
        "for n in range(40):\n"
        "    f, ts = R[n % len(R)]\n"
        "    f = [(k, v * (n + 1) / 7 if isinstance(v, float) else v) for k, v in f]\n"
        "    want = lineproto.encode('env', (('device', 'd1'), ('sensor', 'x')), f, ts)\n"
        "    q = o.put(n % len(R), f, ts)\n"
        "    exp = (exp + [want])[-3:]\n"
        "    if o.line(q).decode() != want: bad.append([o.line(q).decode(), want])\n"
        "    if n % 2:\n"
        "        if o.peek().decode() != exp[0]: bad.append(['peek', o.peek().decode(), exp[0]])\n"
        "        o.pop(); exp.pop(0)\n"
        "print(json.dumps([bad, o.stats(), len(o._b)]))\n")
    bad, st, ring = got
    assert bad == []
    assert st["dropped"] > 0 and st["queued"] == 2


def test_values_line_protocol_cannot_carry_are_refused(mpy):
    got = _json(mpy,
        "import json\nfrom perch.outbox import Outbox\n"
        "o = Outbox(3)\ns = o.source('m')\nout = []\n"
        "for f in ([('f', float('nan'))], [('f', float('inf'))], [('f', -float('inf'))],\n"
        "          [('i', 2 ** 63)], [('i', -2 ** 63 - 1)], [('s', 'text')], [],\n"
        "          [('x', None)], [('a\\nb', 1)], [('', 1)]):\n"
        "    try:\n        o.put(s, f); out.append('accepted')\n"
        "    except ValueError as e:\n        out.append(str(e))\n"
        "print(json.dumps([out, len(o)]))\n")
    out, n = got
    assert n == 0 and "accepted" not in out
    assert "not representable" in out[0] and "int64" in out[3] and "int64" in out[4]
    assert "at least one field" in out[6] and "at least one field" in out[7]


def test_full_default_buffer_costs_a_fixed_few_kb_and_replays_in_order(mpy):
    # SPEC §2/§5: mqtt.buffer (500) readings kept with no broker; the ring is allocated at
    # boot, so a buffer that filled up costs no more heap than an empty one
    got = _json(mpy,
        "import gc, json, math, asyncio\nfrom perch.outbox import Outbox\n"
        "from perch import lineproto\nasyncio.Event()\n"
        "D = (('device', 'perch-a1b2c3'),)\n"
        "gc.collect(); a0 = gc.mem_alloc()\n"
        "o = Outbox(500)\n"
        "mcu = o.source(lineproto.prefix('mcu', D + (('sensor', 'mcu'),)))\n"
        "dev = o.source(lineproto.prefix('device', D))\n"
        "gc.collect(); a1 = gc.mem_alloc()\n"
        "T = 1764170000000000000\n"
        "def rnd(i):\n"
        "    t = T + i * 10 ** 10\n"
        "    o.put(mcu, (('temperature', 45.0 + math.sin(i) / 7),), t)\n"
        "    o.put(dev, (('heap_free', 60000 + 97 * i), ('uptime_s', 10 * i),\n"
        "                ('queued', len(o)), ('dropped', o.dropped),\n"
        "                ('rssi', -48 if i % 3 else None)), t + 7)\n"
        "rnd(0)\n"
        "gc.collect(); a2 = gc.mem_alloc()\n"
        "for i in range(1, 250): rnd(i)\n"
        "gc.collect(); a3 = gc.mem_alloc()\n"
        "st = o.stats()\nout = []\n"
        "while o.peek() is not None:\n"
        "    out.append(o.peek().decode()); o.pop()\n"
        "print(json.dumps([len(o._b), a1 - a0, a3 - a2, st, o.stats(), out]))\n")
    ring, cost, growth, full, after, lines = got
    assert ring <= 500 * 18 + 136  # 18 bytes a reading, and one record of slack
    assert cost <= 10.5 * 1024  # the whole outbox, its ring allocated once
    assert growth <= 256  # filling it allocates nothing that stays
    assert full == {"queued": 500, "sent": 0, "dropped": 0}
    assert after == {"queued": 0, "sent": 500, "dropped": 0}
    import math

    tags = {"device": "perch-a1b2c3"}
    for i in range(250):
        t = 1764170000000000000 + i * 10 ** 10
        m, tg, f, ts = parse_line(lines[2 * i])
        assert (m, tg, ts) == ("mcu", dict(tags, sensor="mcu"), t)
        assert f == {"temperature": 45.0 + math.sin(i) / 7}  # the very double read
        m, tg, f, ts = parse_line(lines[2 * i + 1])
        assert (m, tg, ts) == ("device", tags, t + 7)
        want = {"heap_free": 60000 + 97 * i, "uptime_s": 10 * i, "queued": 2 * i + 1,
                "dropped": 0}
        if i % 3:
            want["rssi"] = -48
        assert f == want
