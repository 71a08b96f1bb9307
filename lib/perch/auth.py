# Admin authentication: the check in front of every request (cross-site refusal, then the
# session cookie or HTTP Basic), and the login routes. Only that check stays resident:
# password hashing, lockout, sessions and refusals are perch.login's, loaded on use
# (config.lazy), as are auth.hash_password, auth.is_hash, auth.safe_next and the like.
import binascii
import hashlib
import time

from micropython import const

from perch.config import drop, lazy

MAX_FAILS = const(5)
_SESSION_MS = const(12 * 3600 * 1000)
COOKIE = "perch_session"
AP_IP = "192.168.4.1"


def __getattr__(name):
    return getattr(lazy("login"), name)


def cross_site(method, headers, own):
    """True when a state-changing request comes from a page not served by us.

    own(hostport) says whether an Origin/Referer host names this device. Requests without
    either header (scripts, curl) are not cross-site: every browser sends Origin on a
    cross-origin POST."""
    if method not in ("POST", "PATCH", "DELETE", "PUT"):
        return False
    v = headers.get("Origin")
    if v is None:
        v = headers.get("Referer")
        if v is None:
            return False
    # 'http://host:port/...' -> 'host:port'; "null" and other opaque origins are not ours
    i = v.find("://")
    return i < 0 or not own(v[i + 3:].partition("/")[0].lower())


def own_host(ctx, hostport):
    """True when a Host/Origin value names this device (any of its addresses)."""
    if not hostport or hostport[0] == "[":
        return False
    h = hostport.lower().partition(":")[0]
    if h in ("127.0.0.1", "localhost", AP_IP, ctx.device_id, ctx.device_id + ".local"):
        return True
    w = getattr(ctx, "wifi", None)
    return w is not None and h == w.station_ip()


def _basic(header):
    # The password of an "admin" Basic credential, else None.
    if not header or not header.startswith("Basic "):
        return None
    try:
        b = binascii.a2b_base64(header[6:].strip())
        try:
            raw = b.decode()
        except UnicodeError:
            # Clients that follow RFC 7617's old default send ISO-8859-1.
            raw = "".join(chr(c) for c in b)
    except ValueError:
        return None
    user, sep, pw = raw.partition(":")
    return pw if sep and user == "admin" else None


# The login state is this module's own globals, set by perch.login's Guard(ctx) (at setup,
# or fresh in a test): a class would cost a type object, its dict and an instance for good.
# ctx.auth is this module and so is ctx.auth.guard, as the pages call it; required(),
# failed(), succeeded(), lock_left_s(), new_session(), clear(), end_session() and setup()
# are perch.login's, found through __getattr__ above.
if False:  # for the type checker only: MicroPython has no typing module
    from typing import Any
ctx: "Any" = None  # perch.app.Context
guard: "Any" = None
fails = 0
locked_at: "Any" = None  # ticks_ms of the lockout
sessions: dict = {}  # token -> ticks_ms of the login
quick: "Any" = None  # (stored hash, peppered digest, pepper) of the last good password
pending: dict = {}  # plaintext -> hash computed ahead of a config write
plain: "Any" = None  # cfg.update as perch.config made it


def valid_session(tok):
    t = sessions.get(tok)
    if t is None:
        return False
    if time.ticks_diff(time.ticks_ms(), t) > _SESSION_MS:
        del sessions[tok]
        return False
    return True


async def check(pw):
    stored = ctx.cfg["admin.password"]
    if isinstance(pw, str):
        pw = pw.encode()
    # Fast path for scripts sending Basic on every request: one hash, peppered with a
    # secret, so no timing of the comparison tells anything about the digest.
    q = quick
    if q is not None and q[0] == stored:
        s = hashlib.sha256(q[2])
        s.update(pw)
        if s.digest() == q[1]:
            return True
    return await lazy("login").check(pw, stored)


# The handlers and cfg.update's wrapper are module functions, not closures made at setup:
# setup's own code (hashing a seeded password, wrapping cfg.update) is perch.login's, so
# none of it stays in RAM.


def update(changes, save=True):
    # cfg.update once setup ran: every write of admin.password (settings page,
    # PATCH /api/config) stores a hash. Other writes (a saved network, the settings form)
    # go straight to the config, without loading perch.login's code next to theirs. The
    # key is "admin.password" or "admin" ({"admin": {"password": ...}}), at the top.
    for k in changes:
        if k[:5] == "admin":
            return lazy("login").cfg_update(changes, save)
    plain(changes, save)


def _own(h):
    return own_host(ctx, h)


async def _gate(req):
    global fails
    h = req.headers
    if cross_site(req.method, h, _own):
        return lazy("login").cross_refused(req)
    if not ctx.cfg["admin.password"] or req.path in ("/login", "/style.css"):
        return None
    tok = req.cookies.get(COOKIE)
    if not (tok and valid_session(tok)):
        pw = _basic(h.get("Authorization"))
        if (pw is None or locked_at is not None and lazy("login").lock_left_s()
                or not await check(pw)):
            return lazy("login").refuse(req, pw)
        fails = 0
    if req.method == "PATCH" and req.path == "/api/config":
        # Hash a new admin password here, where it may take its time: the config
        # write that follows must not stall the loop.
        await lazy("login").prehash(req)
    return None


_in_view = 0


async def view(name, *args):
    """Run perch.setup_views.<name>(*args) with the page code loaded for this request only.

    The HTML pages are rarely used and their code is large: dropping the modules after
    each request gives that RAM back to telemetry and OTA."""
    global _in_view
    from perch import setup_views

    _in_view += 1
    try:
        return await getattr(setup_views, name)(*args)
    finally:
        _in_view -= 1
        if not _in_view:
            drop("setup_views")
            drop("setup_pages")
