# Bounded offline buffer for readings (SPEC §5): keeps what the broker has not
# acknowledged yet, replays it oldest first, and when full drops the oldest and
# counts it. Optionally spills to a flash spool so an outage longer than the RAM
# buffer (or a reboot) loses less.
#
# Items are encoded lines. An item leaves the outbox only when the uplink confirms
# delivery (peek, publish, then pop), so a connection dropped mid-publish resends
# instead of losing the reading.
#
# In RAM the lines sit back to back in 1 KB chunks, each as a 2-byte length (+1, so that
# the zeroed rest of a chunk reads as its end) and its bytes: a reading costs its length
# plus 2 bytes, where a bytes object per line would add ~50 on 64 bits (and fragment the
# heap). A chunk is freed once read; an empty outbox holds nothing.

import asyncio

from micropython import const

_CHUNK = const(1024)


class Outbox:
    """FIFO of encoded readings bounded by `size` items in RAM (+ `spool_size` on flash)."""

    def __init__(self, size, spool_path=None, spool_size=0):
        if size < 1:
            raise ValueError("mqtt.buffer must be at least 1")
        self.size = size
        self._c = []  # chunks, oldest first
        self._h = 0  # read offset in the first chunk
        self._t = 0  # write offset in the last chunk
        self._n = 0  # lines in RAM
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

    def _first(self, drop=False):
        # the oldest line in RAM (bytes); with drop, forget it instead
        c = self._c[0]
        h = self._h
        n = c[h] | c[h + 1] << 8
        if not drop:
            return bytes(memoryview(c)[h + 2:h + 1 + n])
        self._n -= 1
        h += n + 1
        if not self._n:
            self._c = []  # nothing left: give the chunks back
            h = self._t = 0
        elif h + 2 > len(c) or not c[h] | c[h + 1] << 8:
            self._c.pop(0)  # this chunk is used up
            h = 0
        self._h = h

    def put(self, item):
        if isinstance(item, str):
            item = item.encode()
        if self._n >= self.size:
            d = 1
            if self.spool:
                # RAM overflow moves the oldest to flash; the spool drops when it is full
                d = self.spool.append(self._first())
            self._first(True)
            self.dropped += d
            self._gen += d
        n = len(item) + 1
        c = self._c
        t = self._t
        if not c or t + n + 1 > len(c[-1]):
            c.append(bytearray(max(_CHUNK, n + 1)))
            t = 0
        b = c[-1]
        b[t] = n & 0xFF
        b[t + 1] = n >> 8
        b[t + 2:t + n + 1] = item
        self._t = t + n + 1
        self._n += 1
        self._ev.set()

    def peek(self):
        """Oldest item not yet delivered, or None."""
        self._pgen = self._gen
        if self.spool and self.spool.count:
            return self.spool.peek()
        return self._first() if self._n else None

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
            self._first(True)
        else:
            return
        self.sent += 1

    async def wait(self):
        """Return once there is something to send."""
        while not len(self):
            self._ev.clear()
            await self._ev.wait()

    def stats(self):
        return {"queued": len(self), "sent": self.sent, "dropped": self.dropped}
