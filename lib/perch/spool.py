# Flash spool of the outbox (mqtt.spool): readings that overflow the RAM buffer, oldest
# first, kept across reboots. An append-only file of lines read from a head offset that a
# side file remembers; compacted now and then so a long outage does not grow it forever.

import os

from micropython import const

from perch.config import write_atomic

_NL = const(10)
# Rewrite the spool once this many consumed bytes sit at its front.
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
        write_atomic(self._head_path, str(self.head))

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
