# An upload's body, loaded when one arrives (httpguard, ota_install): first the bytes read with
# the head, then the socket.
import asyncio

from micropython import const

_READ_MS = const(5000)  # httpguard._READ_MS


class Replay:
    """A bundle source (see perch/bundle.py). readinto() takes what is there without a trip
    through the event loop, which is what makes uploads fast; wait() waits, at most _READ_MS.
    The upload handler sets `left`, the body's length, and nothing past it is read."""

    def __init__(self, buf, inner):
        self._buf = memoryview(buf) if buf else None
        self._in = inner
        self.left = 0

    def readinto(self, mv):
        left = self.left
        if left <= 0:
            return 0
        if len(mv) > left:
            mv = mv[:left]
        b = self._buf
        if b is not None:
            n = min(len(mv), len(b))
            mv[:n] = b[:n]
            self._buf = b[n:] if n < len(b) else None
        else:
            n = self._in.s.readinto(mv)
            if n is None:
                return None
        self.left = left - n
        return n

    async def wait(self, mv):
        n = self.readinto(mv)
        if n is None:
            mv = mv[: self.left]
            n = await asyncio.wait_for_ms(self._in.readinto(mv), _READ_MS) or 0
            self.left -= n
        return n
