# Bounded offline buffer for readings (SPEC §5): keeps what the broker has not
# acknowledged yet, replays it oldest first, and when full drops the oldest and
# counts it. Optionally spills to a flash spool so an outage longer than the RAM
# buffer (or a reboot) loses less.
#
# A reading leaves the outbox only when the uplink confirms delivery (peek, publish, then
# pop), so a connection dropped mid-publish resends instead of losing it.
#
# In RAM a reading is a binary record in one ring allocated at boot, mqtt.buffer x _PER bytes
# (+ one record of slack): a full buffer costs what an empty one does, and nothing grows or
# fragments the heap during an outage. A record becomes a line of line protocol only when it
# is published, spooled or logged. Record:
#   source | ts bytes << 4 (0: no timestamp) | record length | [timestamp] | fields
# The timestamp (ns) is kept as the difference to the one before it (_lt when put; _hb, the
# one before the oldest record, when read back), a signed int of as few bytes as hold it:
# 3-5 bytes instead of 8. A field is a tag byte, key index << 4 | code, then its value: code
# 0-7 a signed int of code + 1 bytes, 8 a float32 that is the reading exactly, 9 a float32 of
# a reading that prints with 7 significant digits (21.3, which float32 does not hold), 10 a
# float64, 11 false, 12 true. Each form is used only when it gives back the very float read,
# so the text published is what the sensor read, as repr() writes it.

import asyncio
import struct

from micropython import const

_PER = const(18)  # ring bytes per reading: records of the default sensors average ~16
_REC = const(136)  # the largest record: 2 + 8 + 14 fields of 9 bytes


def _int(r, i, v):
    # v into r[i:], little-endian in as few bytes as hold it signed; returns how many
    n = 1
    while not -(1 << 8 * n - 1) <= v < 1 << 8 * n - 1:
        n += 1
    if n > 8:
        raise ValueError("%d is out of int64 range" % v)
    for j in range(n):
        r[i + j] = v >> 8 * j & 255
    return n


def _get(r, i, n):
    # the signed int of n bytes at r[i:] (a ring position: it may wrap)
    v = 0
    for j in range(n):
        v |= r[(i + j) % len(r)] << 8 * j
    return v - (1 << 8 * n) if v >> 8 * n - 1 else v


class Outbox:
    """FIFO of readings bounded by `size` items in RAM (+ `spool_size` lines on flash)."""

    def __init__(self, size, spool_path=None, spool_size=0):
        if size < 1:
            raise ValueError("mqtt.buffer must be at least 1")
        self.size = size
        self._b = bytearray(size * _PER + _REC)
        self._r = bytearray(_REC)  # the record being encoded
        self._h = self._t = self._u = self._n = 0  # head, tail, bytes used, records in RAM
        # timestamps: the last put, the one before it, the one before the oldest record
        self._lt = self._pb = self._hb = 0
        # per source (a sensor, or the device measurement): its line prefix, then the keys
        # of the fields it has given so far (a record names a field by its index here)
        self.src = []
        self.dropped = 0
        self.sent = 0
        self.spool = None
        if spool_path and spool_size > 0:
            from perch.spool import Spool  # flash spool: only loaded when configured

            self.spool = Spool(spool_path, spool_size)
        # counts removals from the front: a reading dropped while the uplink had it in
        # flight must not make pop() remove the next, unsent one
        self._gen = 0
        self._pgen = -1
        self._ev = asyncio.Event()
        if len(self):
            self._ev.set()

    def __len__(self):
        return self._n + (self.spool.count if self.spool else 0)

    def source(self, prefix):
        """Register a line prefix (escaped measurement and tags); returns its number."""
        self.src.append([prefix])
        return len(self.src) - 1

    def put(self, src, fields, ts=None):
        """Queue a reading: (key, value) pairs, None values left out; ts in ns or None.

        Returns its position for line(); ValueError for a value line protocol cannot carry.
        """
        r = self._r
        keys = self.src[src]
        d = p = 2
        if ts is not None:
            p += _int(r, 2, ts - self._lt)
            d = p
        for k, v in fields:
            if v is None:
                continue
            if p > _REC - 9:
                raise ValueError("too many fields")
            try:
                i = keys.index(k, 1)
            except ValueError:
                i = len(keys)
                # a raw newline would end the line early and inject another one
                if i > 15 or not isinstance(k, str) or not k or "\n" in k or "\r" in k:
                    raise ValueError("bad field key %r" % (k,))
                keys.append(k)
            n = 0
            if isinstance(v, bool):
                c = 12 if v else 11
            elif isinstance(v, int):
                try:
                    n = _int(r, p + 1, v)
                except ValueError:
                    raise ValueError("%s=%d is out of int64 range" % (k, v))
                c = n - 1
            elif isinstance(v, float):
                if v != v or v - v:  # inf - inf is nan
                    raise ValueError("%s=%r is not representable" % (k, v))
                struct.pack_into("<f", r, p + 1, v)
                f = struct.unpack_from("<f", r, p + 1)[0]
                c, n = 8, 4
                if f != v:
                    c = 9
                    if float("%.7g" % f) != v:
                        struct.pack_into("<d", r, p + 1, v)
                        c, n = 10, 8
            else:
                raise ValueError("%s=%r: a field is a number or a bool" % (k, v))
            r[p] = (i - 1) << 4 | c
            p += 1 + n
        if p == d:
            raise ValueError("a line needs at least one field")
        r[0] = src | d - 2 << 4
        r[1] = p
        if ts is not None:
            self._pb = self._lt
            self._lt = ts
        b = self._b
        while self._n >= self.size or self._u + p > len(b):
            self._drop()
        t = self._t
        m = min(p, len(b) - t)  # the ring's end may cut the record in two
        b[t:t + m] = memoryview(r)[:m]
        if m < p:
            b[:p - m] = memoryview(r)[m:p]
        self._t = (t + p) % len(b)
        self._u += p
        self._n += 1
        self._ev.set()
        return t

    def line(self, q):
        """The record at ring position q, the oldest or the last put, as a line of line
        protocol (bytes)."""
        r = self._b
        p = r[(q + 1) % len(r)]
        t = self._hb if q == self._h else self._pb  # the timestamp before this record's
        if q + p > len(r):
            r = r[q:] + r[:q + p - len(r)]  # cut in two by the ring's end (< _REC bytes)
            q = 0
        s = self.src[r[q] & 15]
        out = [s[0]]
        n = r[q] >> 4
        i = q + 2 + n
        p += q
        sep = " "
        while i < p:
            c = r[i] & 15
            k = s[(r[i] >> 4) + 1]
            i += 1
            if c < 8:
                n = c + 1
                x = "%di" % _get(r, i, n)
            elif c < 11:
                n = 8 if c == 10 else 4
                f = struct.unpack_from("<d" if n == 8 else "<f", r, i)[0]
                if c == 9:
                    f = float("%.7g" % f)
                x = repr(f)
                # '21' would do for the parser, but floats stay visibly floats
                if "." not in x and "e" not in x:
                    x += ".0"
            else:
                n = 0
                x = "true" if c == 12 else "false"
            for c in "\\,= ":  # escaped: the backslash first, the others add backslashes
                if c in k:
                    k = k.replace(c, "\\" + c)
            out.append("%s%s=%s" % (sep, k, x))
            sep = ","
            i += n
        n = r[q] >> 4
        if n:
            out.append(" %d" % (_get(r, q + 2, n) + t))
        return "".join(out).encode()

    def _drop(self, spill=True):
        # forget the oldest record in RAM; with a spool, move it there instead
        d = 1
        if spill:
            if self.spool:
                # the spool drops its own oldest when it is full
                try:
                    d = self.spool.append(self.line(self._h))
                except OSError:
                    pass  # flash full or failing: the reading is dropped, sampling goes on
            self.dropped += d
            self._gen += d
        b = self._b
        h = self._h
        if b[h] >> 4:
            self._hb += _get(b, h + 2, b[h] >> 4)
        p = b[(h + 1) % len(b)]
        self._h = (h + p) % len(b)
        self._u -= p
        self._n -= 1

    def peek(self):
        """Oldest item not yet delivered (bytes), or None."""
        self._pgen = self._gen
        if self.spool and self.spool.count:
            return self.spool.peek()
        return self.line(self._h) if self._n else None

    def pop(self):
        """The item from the last peek() was delivered."""
        if self._pgen != self._gen:
            # it was dropped as the oldest while in flight, yet it arrived: not a loss
            self.dropped -= 1
            self.sent += 1
            self._pgen = -1
            return
        self._gen += 1
        if self.spool and self.spool.count:
            self.spool.pop()
        elif self._n:
            self._drop(False)
        else:
            return
        self.sent += 1

    async def wait(self, more=()):
        """Return once there is something to send (or in `more`, a list that sets _ev)."""
        while not (len(self) or more):
            self._ev.clear()
            await self._ev.wait()

    def stats(self):
        return {"queued": len(self), "sent": self.sent, "dropped": self.dropped}
