# Bounded offline buffer for readings (SPEC §5): keeps what the broker has not
# acknowledged yet, replays it oldest first, and when full drops the oldest and
# counts it. Optionally spills to a flash spool so an outage longer than the RAM
# buffer (or a reboot) loses less.
#
# Items are encoded lines (bytes). An item leaves the outbox only when the
# uplink confirms delivery (peek, publish, then pop), so a connection dropped
# mid-publish resends instead of losing the reading.

import asyncio
import os

from micropython import const

_NL = const(10)
# Rewrite the spool once this many consumed bytes sit at its front, so a long
# outage with drop-oldest does not grow the file forever.
_COMPACT_AT = const(16384)


class Spool:
    """Append-only file of lines, read from a head offset kept in a side file.

    Oldest readings live here when RAM is full; the file is removed once drained.
    """

    def __init__(self, path, limit):
        self.path = path
        self.limit = limit
        self._head_path = path + ".head"
        self.head = 0
        self.count = 0
        self._load()

    def _load(self):
        try:
            with open(self._head_path) as f:
                self.head = int(f.read() or 0)
        except (OSError, ValueError):
            self.head = 0
        try:
            with open(self.path, "rb") as f:
                f.seek(self.head)
                n = 0
                end = self.head
                torn = False
                while True:
                    ln = f.readline()
                    if not ln:
                        break
                    if ln[-1] != _NL:
                        torn = True  # a power cut mid-append: not a reading
                        break
                    n += 1
                    end += len(ln)
            self.count = n
        except OSError:
            self.head = 0
            self.count = 0
            return
        if torn:
            # cut the torn tail off, or the next append would glue onto it
            self._compact(end)

    def _save_head(self):
        tmp = self._head_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(self.head))
        os.rename(tmp, self._head_path)

    def append(self, item):
        """Add one line; returns the number of lines dropped (oldest) to stay in limit."""
        dropped = 0
        if self.count >= self.limit:
            self.pop()
            dropped = 1
        if self.head > _COMPACT_AT:
            self._compact()
        with open(self.path, "ab") as f:
            f.write(item)
            f.write(b"\n")
        self.count += 1
        return dropped

    def _compact(self, end=-1):
        tmp = self.path + ".tmp"
        buf = bytearray(512)
        left = end - self.head if end >= 0 else -1
        with open(self.path, "rb") as src, open(tmp, "wb") as dst:
            src.seek(self.head)
            while left:
                n = src.readinto(buf)
                if not n:
                    break
                if 0 <= left < n:
                    n = left
                dst.write(memoryview(buf)[:n])
                if left > 0:
                    left -= n
        # head first: a power cut before the rename then replays from the start of
        # the old file (duplicates, never loss)
        self.head = 0
        self._save_head()
        os.rename(tmp, self.path)

    def peek(self):
        if not self.count:
            return None
        with open(self.path, "rb") as f:
            f.seek(self.head)
            ln = f.readline()
        return ln[:-1] if ln else None

    def pop(self):
        if not self.count:
            return
        with open(self.path, "rb") as f:
            f.seek(self.head)
            self.head += len(f.readline())
        self.count -= 1
        if not self.count:
            self.clear()
        else:
            self._save_head()

    def clear(self):
        for p in (self.path, self._head_path):
            try:
                os.remove(p)
            except OSError:
                pass
        self.head = 0
        self.count = 0


class Outbox:
    """FIFO of encoded readings bounded by `size` items in RAM (+ `spool_size` on flash)."""

    def __init__(self, size, spool_path=None, spool_size=0):
        if size < 1:
            raise ValueError("mqtt.buffer must be at least 1")
        self.size = size
        self._q = []
        self.dropped = 0
        self.sent = 0
        self.spool = Spool(spool_path, spool_size) if spool_path and spool_size > 0 else None
        # counts removals from the front: a reading dropped while the uplink had it in
        # flight must not make pop() remove the next, unsent one
        self._gen = 0
        self._pgen = -1
        self._ev = asyncio.Event()
        if len(self):
            self._ev.set()

    def __len__(self):
        return len(self._q) + (self.spool.count if self.spool else 0)

    def put(self, item):
        if isinstance(item, str):
            item = item.encode()
        q = self._q
        if len(q) >= self.size:
            old = q.pop(0)
            if self.spool:
                # RAM overflow moves the oldest to flash; the spool drops when it is full
                d = self.spool.append(old)
                self.dropped += d
                self._gen += d
            else:
                self.dropped += 1
                self._gen += 1
        q.append(item)
        self._ev.set()

    def peek(self):
        """Oldest item not yet delivered, or None."""
        self._pgen = self._gen
        if self.spool and self.spool.count:
            return self.spool.peek()
        return self._q[0] if self._q else None

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
        elif self._q:
            self._q.pop(0)
        else:
            return
        self.sent += 1
        if not len(self):
            self._ev.clear()

    async def wait(self):
        """Return once there is something to send."""
        while not len(self):
            self._ev.clear()
            await self._ev.wait()

    def stats(self):
        return {"queued": len(self), "sent": self.sent, "dropped": self.dropped}
