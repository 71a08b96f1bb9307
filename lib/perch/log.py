# Logging: one line per event on stdout, and a ring of the last lines for /api/logs.
#
#   2026-11-26T12:00:00Z INFO web: listening port=80

import time

from micropython import const

DEBUG = const(10)
INFO = const(20)
WARNING = const(30)
ERROR = const(40)

_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR"}
_RING = const(64)

level = INFO
_lines: list = [None] * _RING
_seq = 0
# Callables (levelno, line) that want every line at WARNING and above (MQTT forwarding).
forwarders: list = []


def set_level(name):
    global level
    for no, n in _NAMES.items():
        if n == name:
            level = no


def _fmt(v):
    s = v if isinstance(v, str) else repr(v)
    if not s or " " in s or '"' in s or "=" in s:
        s = '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')
    return s


def _stamp():
    t = time.gmtime()
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % t[:6]


def emit(no, name, msg, kv):
    global _seq
    if no < level:
        return
    line = "%s %s %s: %s" % (_stamp(), _NAMES[no], name, msg)
    if kv:
        line += " " + " ".join("%s=%s" % (k, _fmt(v)) for k, v in kv.items())
    print(line)
    _seq += 1
    _lines[_seq % _RING] = line
    if no >= WARNING:
        for fwd in forwarders:
            try:
                fwd(no, line)
            except Exception:  # a broken forwarder must not break logging
                pass


def since(seq, limit=_RING):
    """Lines after sequence number seq, oldest first: [(seq, line), ...]."""
    first = max(seq + 1, _seq - _RING + 1, 1)
    return [(n, _lines[n % _RING]) for n in range(first, min(_seq, first + limit - 1) + 1)]


def last_seq():
    return _seq


class Logger:
    def __init__(self, name):
        self.name = name

    def debug(self, msg, **kv):
        emit(DEBUG, self.name, msg, kv)

    def info(self, msg, **kv):
        emit(INFO, self.name, msg, kv)

    def warning(self, msg, **kv):
        emit(WARNING, self.name, msg, kv)

    def error(self, msg, **kv):
        emit(ERROR, self.name, msg, kv)

    def exc(self, e, msg, **kv):
        kv["error"] = "%s: %s" % (type(e).__name__, e)
        emit(ERROR, self.name, msg, kv)
