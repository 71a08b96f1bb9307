# Logging: one line per event on stdout, and the last lines for /api/logs.
#
#   2026-11-26T12:00:00Z INFO web: listening port=80
#
# The ring keeps the last _RING lines as UTF-8 in one fixed pool of _POOL bytes (older
# lines give way when the pool is full), so a full ring costs what an empty one does and
# logging allocates nothing that stays. 2 KB hold the last 20 to 60 lines (a typical line
# is 40 to 100 bytes), enough for /api/logs and the logs page to show what just happened.

import time
from array import array

from micropython import const

_DEBUG = const(10)
_INFO = const(20)
_WARNING = const(30)
_ERROR = const(40)

_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR")  # level // 10 - 1
_RING = const(48)  # lines at most
_POOL = const(2048)  # bytes at most
_LINE = const(512)  # longer lines are cut in the ring (not on stdout)

level = _INFO
_pool = bytearray(_POOL)
_at = array("I", range(_RING))  # per line, at seq % _RING: start << 16 | length
_seq = 0  # the last line's number
_old = 1  # the oldest line still held
_end = 0  # where the next line goes
# Callables (levelno, line) that want every line at WARNING and above (MQTT forwarding).
forwarders: list = []


def set_level(name):
    global level
    if name in _NAMES:
        level = (_NAMES.index(name) + 1) * 10


def emit(no, name, msg, kv):
    global _seq, _old, _end
    if no < level:
        return
    line = "%04d-%02d-%02dT%02d:%02d:%02dZ %s %s: %s" % (
        time.gmtime()[:6] + (_NAMES[no // 10 - 1], name, msg)
    )
    for k in kv:
        v = kv[k]
        v = v if isinstance(v, str) else repr(v)
        if not v or " " in v or '"' in v or "=" in v:
            v = '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
        line += " %s=%s" % (k, v)
    print(line)
    # Into the ring.
    b = line.encode()
    n = len(b)
    if n > _LINE:
        n = _LINE
        while b[n] & 0xC0 == 0x80:  # not inside a UTF-8 sequence
            n -= 1
    p = _end
    wrap = p + n > _POOL
    if wrap:
        p = 0
    _seq += 1
    # Drop the oldest lines while there are too many or the new one overwrites them: they
    # lie in pool order, so those are the ones from _end on (all of them, on a wrap).
    while _old < _seq:
        e = _at[_old % _RING]
        a = e >> 16
        z = a + (e & 0xFFFF)
        if _seq - _old < _RING and not (wrap and z > _end) and not (a < p + n and p < z):
            break
        _old += 1
    _pool[p : p + n] = memoryview(b)[:n]
    _at[_seq % _RING] = p << 16 | n
    _end = p + n
    if no >= _WARNING:
        for fwd in forwarders:
            try:
                fwd(no, line)
            except Exception:  # a broken forwarder must not break logging
                pass


def each(seq):
    """Lines after sequence number seq, oldest first, one at a time: (seq, line). A line
    that newer ones pushed out while the caller held the generator is skipped."""
    mv = memoryview(_pool)
    for n in range(max(seq + 1, _old), _seq + 1):
        if n >= _old:
            e = _at[n % _RING]
            yield n, str(mv[e >> 16 : (e >> 16) + (e & 0xFFFF)], "utf-8")


def last_seq():
    return _seq


class Logger:
    """log.Logger(name).info(msg, **kv), and .debug, .warning, .error; .exc(e, msg, **kv)
    logs e at ERROR. The level methods are made on use from their name: one __getattr__
    costs less RAM for good than a function per level."""

    def __init__(self, name):
        self.name = name

    def __getattr__(self, lvl):
        up = lvl.upper()
        if up not in _NAMES and lvl != "exc":
            raise AttributeError(lvl)

        def f(*a, **kv):
            msg = a[-1]
            if len(a) > 1:  # exc(e, msg)
                e = a[0]
                kv["error"] = "%s: %s" % (type(e).__name__, e)
            emit(_ERROR if lvl == "exc" else (_NAMES.index(up) + 1) * 10, self.name, msg, kv)

        return f
