# Admin password, sessions, login lockout and the cross-site check.
#
# The hash is iterated SHA-256 over (previous digest, salt, password); the
# iterations run in slices that yield to the loop so a login never stalls it.
import asyncio
import binascii
import hashlib
import os
import time

from micropython import const

_ITER = const(4096)
_SLICE = const(128)
_SALT = const(16)
_MAX_FAILS = const(5)
_LOCK_MS = const(60_000)
_MAX_SESSIONS = const(8)
_SESSION_MS = const(12 * 3600 * 1000)
COOKIE = "perch_session"
_STATE_CHANGING = ("POST", "PATCH", "DELETE", "PUT")


def _hex(b):
    return binascii.hexlify(b).decode()


async def _digest(pw, salt, n):
    h = b""
    tail = salt + pw
    i = 0
    while i < n:
        s = hashlib.sha256(h)
        s.update(tail)
        h = s.digest()
        i += 1
        if i % _SLICE == 0:
            await asyncio.sleep_ms(0)
    return h


async def hash_password(pw, iterations=_ITER):
    """Stored form: sha256$<iterations>$<salt hex>$<digest hex>."""
    if isinstance(pw, str):
        pw = pw.encode()
    salt = os.urandom(_SALT)
    h = await _digest(pw, salt, iterations)
    return "sha256$%d$%s$%s" % (iterations, _hex(salt), _hex(h))


def _same(a, b):
    # Constant time, so a timing probe cannot walk the digest byte by byte.
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


async def check_password(pw, stored):
    if not stored or not isinstance(stored, str):
        return False
    parts = stored.split("$")
    if len(parts) != 4 or parts[0] != "sha256":
        return False
    try:
        n = int(parts[1])
        salt = binascii.unhexlify(parts[2])
        want = binascii.unhexlify(parts[3])
    except ValueError:
        return False
    if isinstance(pw, str):
        pw = pw.encode()
    return _same(await _digest(pw, salt, n), want)


def is_hash(v):
    return isinstance(v, str) and v.startswith("sha256$") and v.count("$") == 3


class Guard:
    """Login state: failure counter and lockout, live sessions."""

    def __init__(self):
        self.fails = 0
        self.locked_at = None
        self.sessions = {}

    def lock_left_s(self):
        if self.locked_at is None:
            return 0
        left = _LOCK_MS - time.ticks_diff(time.ticks_ms(), self.locked_at)
        if left <= 0:
            self.locked_at = None
            self.fails = 0
            return 0
        return (left + 999) // 1000

    def failed(self):
        self.fails += 1
        if self.fails >= _MAX_FAILS:
            self.locked_at = time.ticks_ms()

    def succeeded(self):
        self.fails = 0

    def new_session(self):
        if len(self.sessions) >= _MAX_SESSIONS:
            # Evict the oldest; a device has few admins.
            oldest = None
            for k, t in self.sessions.items():
                if oldest is None or time.ticks_diff(self.sessions[oldest], t) > 0:
                    oldest = k
            del self.sessions[oldest]
        tok = _hex(os.urandom(16))
        self.sessions[tok] = time.ticks_ms()
        return tok

    def valid_session(self, tok):
        t = self.sessions.get(tok)
        if t is None:
            return False
        if time.ticks_diff(time.ticks_ms(), t) > _SESSION_MS:
            del self.sessions[tok]
            return False
        return True

    def end_session(self, tok):
        self.sessions.pop(tok, None)

    def clear(self):
        self.sessions = {}


def _basic(header):
    # Returns the password of an "admin" Basic credential, else None.
    if not header or not header.startswith("Basic "):
        return None
    try:
        raw = binascii.a2b_base64(header[6:].strip()).decode()
    except (ValueError, UnicodeError):
        return None
    user, sep, pw = raw.partition(":")
    if not sep or user != "admin":
        return None
    return pw


def origin_host(value):
    """'http://host:port/...' -> 'host:port' (lower case), or None."""
    if not value or value == "null":
        return None
    i = value.find("://")
    if i < 0:
        return None
    rest = value[i + 3:]
    j = rest.find("/")
    if j >= 0:
        rest = rest[:j]
    return rest.lower()


def cross_site(method, headers, own):
    """True when a state-changing request comes from a page not served by us.

    own(hostport) says whether an Origin/Referer host names this device.
    Requests without either header (scripts, curl) are not cross-site: every
    browser sends Origin on a cross-origin POST."""
    if method not in _STATE_CHANGING:
        return False
    o = headers.get("Origin")
    if o is not None:
        return not own(origin_host(o))
    r = headers.get("Referer")
    if r is not None:
        return not own(origin_host(r))
    return False


async def authenticate(guard, stored, req):
    """'ok', 'locked' or 'denied' for a request, from its cookie or Basic header."""
    tok = req.cookies.get(COOKIE)
    if tok and guard.valid_session(tok):
        return "ok"
    pw = _basic(req.headers.get("Authorization"))
    if pw is None:
        return "denied"
    if guard.lock_left_s():
        return "locked"
    if await check_password(pw, stored):
        guard.succeeded()
        return "ok"
    guard.failed()
    return "denied"
