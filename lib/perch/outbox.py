# Bounded offline buffer for readings (SPEC §5): keeps what the broker has not
# acknowledged yet, replays it oldest first, and when full drops the oldest and
# counts it. Optionally spills to a flash spool so an outage longer than the RAM
# buffer (or a reboot) loses less.
#
# Items are encoded lines (bytes). An item leaves the outbox only when the
# uplink confirms delivery (peek, publish, then pop), so a connection dropped
# mid-publish resends instead of losing the reading.

import asyncio


class Outbox:
    """FIFO of encoded readings bounded by `size` items in RAM (+ `spool_size` on flash)."""

    def __init__(self, size, spool_path=None, spool_size=0):
        if size < 1:
            raise ValueError("mqtt.buffer must be at least 1")
        self.size = size
        self._q = []
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
