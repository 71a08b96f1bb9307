"""perch.log under the Unix port: line format, levels and the ring."""

import re

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR) [a-z]+: .+$")


def test_line_format_and_levels(mpy):
    r = mpy("from perch import log\nl = log.Logger('wifi')\n"
            "l.debug('hidden')\nl.info('joined', ssid='My Net', rssi=-61)\n"
            "log.set_level('WARNING')\nl.info('hidden too')\nl.warning('lost', why='a=b')\n")
    lines = r.lines()
    assert len(lines) == 2, lines
    assert all(LINE.match(x) for x in lines)
    assert lines[0].endswith('INFO wifi: joined ssid="My Net" rssi=-61')
    assert lines[1].endswith('WARNING wifi: lost why="a=b"')


def test_ring_keeps_the_last_lines_in_order(mpy):
    r = mpy("import json\nfrom perch import log\nl = log.Logger('t')\n"
            "for i in range(100):\n    l.info('n%d' % i)\n"
            "a = list(log.each(0))\nb = list(log.each(95))\nc = list(log.each(100))\n"
            "print(json.dumps([[n for n, _ in a], [s[-3:] for _, s in b], c, log.last_seq()]))")
    first, tail, empty, last = r.json()
    assert first == list(range(53, 101))  # the last 48
    assert tail == ["n95", "n96", "n97", "n98", "n99"]
    assert empty == [] and last == 100


def test_forwarders_get_warnings_and_a_broken_one_is_contained(mpy):
    r = mpy("from perch import log\ngot = []\n"
            "log.forwarders.append(lambda no, line: got.append(line))\n"
            "log.forwarders.append(lambda no, line: 1 / 0)\n"
            "l = log.Logger('t')\nl.info('quiet')\nl.error('loud')\nprint(len(got))")
    assert r.lines()[-1] == "1"


def test_ring_pool_keeps_whole_recent_lines_of_any_length(mpy):
    # The ring is a fixed pool of bytes: long lines push out more old ones, but what it
    # returns is always the newest lines, whole (cut at 512 bytes on a UTF-8 boundary).
    r = mpy("import json\nfrom perch import log\nl = log.Logger('t')\nsizes = []\n"
            "for i in range(300):\n    n = (i * 37) % 1500\n"
            "    l.info('m%d' % i, v='é' * n)\n    sizes.append(n)\n"
            "print(json.dumps([[k, len(s.encode()), s.split(' ')[3]] for k, s in log.each(0)]))",
            )
    got = r.json()
    assert got and got[-1][0] == 300 and len(got) <= 48
    assert [k for k, _, _ in got] == list(range(got[0][0], 301))
    assert all(m == "m%d" % (k - 1) for k, _, m in got)
    assert all(n <= 512 for _, n, _ in got) and sum(n for _, n, _ in got) <= 2048
