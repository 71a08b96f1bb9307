"""Offline buffer under the MicroPython Unix port: bound, drop-oldest, order, spool."""



def test_bounded_drop_oldest_in_order(mpy):
    got = _json(mpy,
        "import json\nfrom perch.outbox import Outbox\n"
        "o = Outbox(5)\n"
        "for i in range(12): o.put('r%d' % i)\n"
        "st = o.stats()\n"
        "out = []\n"
        "while o.peek() is not None:\n"
        "    out.append(o.peek().decode()); o.pop()\n"
        "print(json.dumps([st, out, o.stats()]))\n")
    st, out, after = got
    assert st == {"queued": 5, "sent": 0, "dropped": 7}
    assert out == ["r7", "r8", "r9", "r10", "r11"]
    assert after == {"queued": 0, "sent": 5, "dropped": 7}


def test_peek_without_pop_keeps_item(mpy):
    got = _json(mpy,
        "import json\nfrom perch.outbox import Outbox\n"
        "o = Outbox(3)\no.put('a'); o.put('b')\n"
        "x = [o.peek(), o.peek()]\no.pop()\nx.append(o.peek())\n"
        "print(json.dumps([v.decode() for v in x] + [len(o)]))\n")
    assert got == ["a", "a", "b", 1]


def test_zero_size_rejected(mpy):
    got = _json(mpy,
        "import json\nfrom perch.outbox import Outbox\n"
        "try:\n    Outbox(0); r = 'accepted'\nexcept ValueError as e:\n    r = str(e)\n"
        "print(json.dumps(r))\n")
    assert "mqtt.buffer" in got


def test_wait_wakes_on_put(mpy):
    got = _json(mpy,
        "import json, asyncio\nfrom perch.outbox import Outbox\n"
        "o = Outbox(3)\nlog = []\n"
        "async def consumer():\n"
        "    await o.wait(); log.append(o.peek().decode())\n"
        "async def main():\n"
        "    t = asyncio.create_task(consumer())\n"
        "    await asyncio.sleep_ms(20); log.append('before')\n"
        "    o.put('x'); await asyncio.sleep_ms(20)\n"
        "asyncio.run(main())\nprint(json.dumps(log))\n")
    assert got == ["before", "x"]


def test_spool_keeps_overflow_on_flash_and_replays_in_order(mpy, tmp_path):
    code = (
        "import json\nfrom perch.outbox import Outbox\n"
        "o = Outbox(3, 'spool.dat', 4)\n"
        "for i in range(10): o.put('r%d' % i)\n"
        "print(json.dumps([o.stats(), o.spool.count]))\n")
    st, spooled = _json(mpy, code, cwd=tmp_path)
    # 3 in RAM, 4 on flash, the 3 oldest dropped
    assert st == {"queued": 7, "sent": 0, "dropped": 3}
    assert spooled == 4
    # a reboot: the spool is still there and comes out first, in order
    code2 = (
        "import json\nfrom perch.outbox import Outbox\n"
        "o = Outbox(3, 'spool.dat', 4)\n"
        "n = len(o)\no.put('new')\nout = []\n"
        "while o.peek() is not None:\n"
        "    out.append(o.peek().decode()); o.pop()\n"
        "import os\n"
        "print(json.dumps([n, out, 'spool.dat' in os.listdir()]))\n")
    n, out, exists = _json(mpy, code2, cwd=tmp_path)
    assert n == 4
    assert out == ["r3", "r4", "r5", "r6", "new"]
    assert not exists  # drained spool is removed


def test_spool_compacts_and_survives_partial_line(mpy, tmp_path):
    code = (
        "import json, os\nfrom perch.outbox import Outbox\n"
        "o = Outbox(1, 'sp', 50)\n"
        "for i in range(2000): o.put('reading-%06d' % i)\n"
        "size = os.stat('sp')[6]\n"
        "print(json.dumps([o.stats(), size]))\n")
    st, size = _json(mpy, code, cwd=tmp_path)
    assert st["queued"] == 51 and st["dropped"] == 2000 - 51
    assert size < 16384 + 51 * 20  # compacted, not 2000 lines long
    with open(tmp_path / "sp", "ab") as f:
        f.write(b"torn-li")  # power cut in the middle of an append
    out = _json(mpy,
        "import json\nfrom perch.outbox import Outbox\n"
        "o = Outbox(1, 'sp', 50)\nfirst = o.peek().decode()\n"
        "o.put('a'); o.put('b')\nout = []\n"
        "while o.peek() is not None:\n"
        "    out.append(o.peek().decode()); o.pop()\n"
        "print(json.dumps([first, out[-3:], len(out)]))\n", cwd=tmp_path)
    # the torn bytes are gone; nothing glued onto them
    assert out == ["reading-001949", ["reading-001998", "a", "b"], 51]


def _json(mpy, code, **kw):
    r = mpy(code, **kw)
    assert r.returncode == 0, "micropython failed:\n%s\n%s" % (r.out, r.err)
    return r.json()


def test_drop_of_the_item_in_flight_does_not_lose_the_next(mpy):
    # the uplink peeks the oldest and waits for its PUBACK; meanwhile the buffer overflows
    # and drops that very item; once acknowledged it counts as sent, and nothing else goes
    got = _json(mpy,
        "import json\nfrom perch.outbox import Outbox\n"
        "o = Outbox(2)\no.put('a'); o.put('b')\n"
        "inflight = o.peek().decode()\n"
        "o.put('c')\n"  # drops 'a', in flight
        "o.pop()\n"  # 'a' was acknowledged after all
        "rest = []\n"
        "while o.peek() is not None:\n"
        "    rest.append(o.peek().decode()); o.pop()\n"
        "print(json.dumps([inflight, rest, o.stats()]))\n")
    assert got == ["a", ["b", "c"], {"queued": 0, "sent": 3, "dropped": 0}]
