# The rarely run side of admin authentication, loaded on use through config.lazy() and
# dropped after: password hashing, login failures and lockout, sessions, refusals, and the
# hashing of admin.password on config writes. auth.py keeps the per-request check.
#
# The hash is iterated SHA-256 over (previous digest, salt, password); the iterations run
# in slices that yield to the loop so a login never stalls it.
import asyncio
import binascii
import hashlib
import json
import os
import time

from microdot import Response
from micropython import const

from perch import auth, config, log

_ITER = const(4096)
_SLICE = const(128)
_LOCK_MS = const(60_000)
_MAX_SESSIONS = const(8)

_log = log.Logger("auth")


def _rounds(h, tail, n):
    for _ in range(n):
        s = hashlib.sha256(h)
        s.update(tail)
        h = s.digest()
    return h


async def _digest(pw, salt, n):
    h = b""
    tail = salt + pw
    while n > 0:
        k = _SLICE if n > _SLICE else n
        h = _rounds(h, tail, k)
        n -= k
        await asyncio.sleep_ms(0)
    return h


def _salted(pw):
    if isinstance(pw, str):
        pw = pw.encode()
    return pw, os.urandom(16)


def _format(salt, n, h):
    return "sha256$%d$%s$%s" % (n, binascii.hexlify(salt).decode(), binascii.hexlify(h).decode())


async def hash_password(pw, iterations=_ITER):
    """Stored form: sha256$<iterations>$<salt hex>$<digest hex>."""
    pw, salt = _salted(pw)
    return _format(salt, iterations, await _digest(pw, salt, iterations))


def hash_password_now(pw, iterations=_ITER):
    # Blocking variant for the rare synchronous path (config writes).
    pw, salt = _salted(pw)
    return _format(salt, iterations, _rounds(b"", salt + pw, iterations))


async def check_password(pw, stored):
    try:
        kind, n, salt, want = stored.split("$")
        n = int(n)
        salt = binascii.unhexlify(salt)
        want = binascii.unhexlify(want)
    except (AttributeError, ValueError):
        return False
    if kind != "sha256":
        return False
    if isinstance(pw, str):
        pw = pw.encode()
    got = await _digest(pw, salt, n)
    # Constant time, so a timing probe cannot walk the digest byte by byte.
    r = len(got) ^ len(want)
    for i in range(min(len(got), len(want))):
        r |= got[i] ^ want[i]
    return r == 0


def is_hash(v):
    return isinstance(v, str) and v.startswith("sha256$") and v.count("$") == 3


def safe_next(path):
    # Only same-site paths: "//evil" or "http://" would make an open redirect.
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


# --- the login state, auth's globals (auth.__getattr__ finds these for ctx.auth.guard) ----


def Guard(ctx=None):
    # Fresh login state (setup, tests); the guard is perch.auth itself.
    a = auth
    a.ctx = ctx
    a.guard = a
    a.fails = 0
    a.locked_at = None
    a.sessions = {}
    a.quick = None
    a.pending = {}
    return a


def lock_left_s():
    if auth.locked_at is None:
        return 0
    left = _LOCK_MS - time.ticks_diff(time.ticks_ms(), auth.locked_at)
    if left <= 0:
        auth.locked_at = None
        auth.fails = 0
        return 0
    return (left + 999) // 1000


def failed():
    auth.fails += 1
    if auth.fails >= auth.MAX_FAILS:
        auth.locked_at = time.ticks_ms()


def succeeded():
    auth.fails = 0


def new_session():
    s = auth.sessions
    if len(s) >= _MAX_SESSIONS:
        # Evict the oldest; a device has few admins.
        oldest = None
        for k, t in s.items():
            if oldest is None or time.ticks_diff(s[oldest], t) > 0:
                oldest = k
        del s[oldest]
    tok = binascii.hexlify(os.urandom(16)).decode()
    s[tok] = time.ticks_ms()
    return tok


def end_session(tok):
    auth.sessions.pop(tok, None)


def required():
    return bool(auth.ctx.cfg["admin.password"])


def clear():
    auth.sessions = {}


async def check(pw, stored):
    # The slow path of auth.check: the full hash, then remember a cheap peppered digest.
    ok = await check_password(pw, stored)
    if ok:
        pepper = os.urandom(8)
        s = hashlib.sha256(pepper)
        s.update(pw)
        auth.quick = (stored, s.digest(), pepper)
    return ok


# --- the web side ---------------------------------------------------------------------


def setup(ctx):
    # auth.setup (found through auth.__getattr__), run once: the login state, the gate in
    # front of every request; every later write of admin.password
    # (settings page, PATCH /api/config) stores a hash, and a plaintext seed is hashed now.
    # /login and /logout are on perch.web's core route.
    ctx.auth = Guard(ctx)
    ctx.web.before_request(auth._gate)
    cfg = ctx.cfg
    auth.plain = plain = cfg.update
    # auth's function, not a closure here: that would pin this module's code in RAM.
    cfg.update = auth.update
    cur = cfg["admin.password"]
    if cur and not is_hash(cur):
        # A plaintext seed (config.json or PERCH_ADMIN_PASSWORD): hash it.
        seed(plain, cur)


def cross_refused(req):
    h = req.headers
    _log.warning("cross-site request refused", path=req.path,
                 origin=h.get("Origin") or h.get("Referer"))
    return Response({"error": "cross-site request refused: Origin/Referer is not this device"},
                    403)


def logout(req):
    if req.method != "POST":
        return Response({"error": "method not allowed"}, 405)
    auth.sessions.pop(req.cookies.get(auth.COOKIE), None)
    r = Response.redirect("/login", 303)
    r.delete_cookie(auth.COOKIE, path="/")
    return r


def refuse(req, pw):
    """The answer to a request without valid credentials (pw: the Basic password sent)."""
    left = lock_left_s() if pw is not None else 0
    if pw is not None and not left:
        failed()
        _log.warning("bad Basic credentials", fails=auth.fails)
    if req.path.startswith("/api/"):
        if left:
            return Response({"error": "login locked for %d s after %d failed attempts"
                             % (left, auth.MAX_FAILS)}, 429, {"Retry-After": str(left)})
        return Response({"error": "authentication required"}, 401,
                        {"WWW-Authenticate": 'Basic realm="perch"'})
    nxt = req.url if req.method == "GET" else "/"
    q = ""
    for ch in nxt.encode():
        c = chr(ch)
        q += c if c.isalpha() or c.isdigit() or c in "/-_.~" else "%%%02X" % ch
    return Response.redirect("/login?next=" + q)


def _plain_pw(doc):
    if not isinstance(doc, dict):
        return None
    pw = doc.get("admin.password")
    a = doc.get("admin")
    if isinstance(a, dict):
        pw = a.get("password", pw)
    return pw if isinstance(pw, str) and not is_hash(pw) else None


async def prehash(req):
    try:
        pw = _plain_pw(json.loads(req.body or b"{}"))
    except ValueError:
        pw = None
    if pw and 0 < len(pw.encode()) <= 128:
        auth.pending = {pw: await hash_password(pw)}


def cfg_update(changes, save):
    flat = config.flatten(changes)
    pw = flat.get("admin.password")
    if isinstance(pw, str) and not is_hash(pw):
        config.check("admin.password", pw)
        h = auth.pending.pop(pw, None)
        auth.pending = {}
        flat["admin.password"] = h or hash_password_now(pw)
        clear()
        _log.info("admin password changed")
    auth.plain(flat, save)


def seed(plain, cur):
    # A plaintext password from config.json or PERCH_ADMIN_PASSWORD: hash it in RAM, and on
    # flash too when it came from the file.
    if not is_hash(cur):
        h = hash_password_now(cur)
        env = auth.ctx.cfg.env
        if "admin.password" in env:
            env["admin.password"] = h
        else:
            plain({"admin.password": h})
