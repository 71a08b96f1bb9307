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


# --- Guard methods (auth.Guard.__getattr__ binds them to the guard) ----------------------


def lock_left_s(g):
    if g.locked_at is None:
        return 0
    left = _LOCK_MS - time.ticks_diff(time.ticks_ms(), g.locked_at)
    if left <= 0:
        g.locked_at = None
        g.fails = 0
        return 0
    return (left + 999) // 1000


def failed(g):
    g.fails += 1
    if g.fails >= auth.MAX_FAILS:
        g.locked_at = time.ticks_ms()


def succeeded(g):
    g.fails = 0


def new_session(g):
    s = g.sessions
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


def end_session(g, tok):
    g.sessions.pop(tok, None)


def required(g):
    return bool(g.ctx.cfg["admin.password"])


def clear(g):
    g.sessions = {}


async def check(g, pw, stored):
    # The slow path of Guard.check: the full hash, then remember a cheap peppered digest.
    ok = await check_password(pw, stored)
    if ok:
        pepper = os.urandom(8)
        s = hashlib.sha256(pepper)
        s.update(pw)
        g.quick = (stored, s.digest(), pepper)
    return ok


# --- the web side ---------------------------------------------------------------------


def setup(g):
    # auth.setup's one-time part: every later write of admin.password (settings page,
    # PATCH /api/config) stores a hash, and a plaintext seed is hashed now.
    cfg = g.ctx.cfg
    g.plain = plain = cfg.update
    # auth's function, not a closure here: that would pin this module's code in RAM.
    cfg.update = auth.update
    cur = cfg["admin.password"]
    if cur and not is_hash(cur):
        # A plaintext seed (config.json or PERCH_ADMIN_PASSWORD): hash it.
        seed(g, plain, cur)


def cross_refused(req):
    h = req.headers
    _log.warning("cross-site request refused", path=req.path,
                 origin=h.get("Origin") or h.get("Referer"))
    return Response({"error": "cross-site request refused: Origin/Referer is not this device"},
                    403)


def logout(g, req):
    if req.method != "POST":
        return Response({"error": "method not allowed"}, 405)
    g.sessions.pop(req.cookies.get(auth.COOKIE), None)
    r = Response.redirect("/login", 303)
    r.delete_cookie(auth.COOKIE, path="/")
    return r


def refuse(g, req, pw):
    """The answer to a request without valid credentials (pw: the Basic password sent)."""
    left = lock_left_s(g) if pw is not None else 0
    if pw is not None and not left:
        failed(g)
        _log.warning("bad Basic credentials", fails=g.fails)
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


async def prehash(g, req):
    try:
        pw = _plain_pw(json.loads(req.body or b"{}"))
    except ValueError:
        pw = None
    if pw and 0 < len(pw.encode()) <= 128:
        g.pending = {pw: await hash_password(pw)}


def cfg_update(g, plain, changes, save):
    flat = config.flatten(changes)
    pw = flat.get("admin.password")
    if isinstance(pw, str) and not is_hash(pw):
        config.check("admin.password", pw)
        h = g.pending.pop(pw, None)
        g.pending = {}
        flat["admin.password"] = h or hash_password_now(pw)
        clear(g)
        _log.info("admin password changed")
    plain(flat, save)


def seed(g, plain, cur):
    # A plaintext password from config.json or PERCH_ADMIN_PASSWORD: hash it in RAM, and on
    # flash too when it came from the file.
    if not is_hash(cur):
        h = hash_password_now(cur)
        env = g.ctx.cfg.env
        if "admin.password" in env:
            env["admin.password"] = h
        else:
            plain({"admin.password": h})
