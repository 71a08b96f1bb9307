# Admin password, sessions, login lockout and the cross-site check.
#
# The hash is iterated SHA-256 over (previous digest, salt, password); the
# iterations run in slices that yield to the loop so a login never stalls it.
import asyncio
import binascii
import hashlib
import os
import sys
import time

from micropython import const

_ITER = const(4096)
_SLICE = const(128)
_SALT = const(16)
MAX_FAILS = const(5)
_LOCK_MS = const(60_000)
_MAX_SESSIONS = const(8)
_SESSION_MS = const(12 * 3600 * 1000)
COOKIE = "perch_session"
_STATE_CHANGING = ("POST", "PATCH", "DELETE", "PUT")


def _hex(b):
    return binascii.hexlify(b).decode()


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


def _format(salt, n, h):
    return "sha256$%d$%s$%s" % (n, _hex(salt), _hex(h))


async def hash_password(pw, iterations=_ITER):
    """Stored form: sha256$<iterations>$<salt hex>$<digest hex>."""
    if isinstance(pw, str):
        pw = pw.encode()
    salt = os.urandom(_SALT)
    return _format(salt, iterations, await _digest(pw, salt, iterations))


def hash_password_now(pw, iterations=_ITER):
    # Blocking variant for the rare synchronous path (config writes).
    if isinstance(pw, str):
        pw = pw.encode()
    salt = os.urandom(_SALT)
    return _format(salt, iterations, _rounds(b"", salt + pw, iterations))


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
        if self.fails >= MAX_FAILS:
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
        b = binascii.a2b_base64(header[6:].strip())
    except ValueError:
        return None
    try:
        raw = b.decode()
    except UnicodeError:
        # Clients that follow RFC 7617's old default send ISO-8859-1.
        raw = "".join(chr(c) for c in b)
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


# --- the web side: hook on every route, login page, config write hook --------

AP_IP = "192.168.4.1"
_OPEN = ("/login", "/style.css")


def own_host(ctx, hostport):
    """True when a Host/Origin value names this device (any of its addresses)."""
    if not hostport:
        return False
    h = hostport.lower()
    if h.startswith("["):
        return False
    h = h.partition(":")[0]
    if h in ("127.0.0.1", "localhost", AP_IP, ctx.device_id, ctx.device_id + ".local"):
        return True
    w = getattr(ctx, "wifi", None)
    return w is not None and h == w.station_ip()


def safe_next(path):
    # Only same-site paths: "//evil" or "http://" would make an open redirect.
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


class Web:
    def __init__(self, ctx, lg):
        self.ctx = ctx
        self._log = lg
        self.guard = Guard()
        self._quick = None  # (stored hash, fast digest) of the last good Basic password
        self._pending = {}  # plaintext -> hash computed ahead of a config write

    def stored(self):
        return self.ctx.cfg["admin.password"]

    def required(self):
        return bool(self.stored())

    async def check(self, pw):
        stored = self.stored()
        if isinstance(pw, str):
            pw = pw.encode()
        q = self._quick
        if q is not None and q[0] == stored:
            s = hashlib.sha256(q[2])
            s.update(pw)
            if _same(s.digest(), q[1]):
                return True
        ok = await check_password(pw, stored)
        if ok:
            pepper = os.urandom(8)
            s = hashlib.sha256(pepper)
            s.update(pw)
            self._quick = (stored, s.digest(), pepper)
        return ok

    async def authenticate(self, req):
        tok = req.cookies.get(COOKIE)
        if tok and self.guard.valid_session(tok):
            return "ok"
        pw = _basic(req.headers.get("Authorization"))
        if pw is None:
            return "denied"
        if self.guard.lock_left_s():
            return "locked"
        if await self.check(pw):
            self.guard.succeeded()
            return "ok"
        self.guard.failed()
        self._log.warning("bad Basic credentials", fails=self.guard.fails)
        return "denied"

    def hash_for_config(self, pw):
        h = self._pending.pop(pw, None)
        self._pending = {}
        return h or hash_password_now(pw)


def _plain_admin_pw(doc):
    if not isinstance(doc, dict):
        return None
    pw = doc.get("admin.password")
    a = doc.get("admin")
    if isinstance(a, dict):
        pw = a.get("password", pw)
    return pw if isinstance(pw, str) and not is_hash(pw) else None


def setup(ctx):
    import json

    from microdot import Response

    from perch import config, log

    lg = log.Logger("auth")
    web = Web(ctx, lg)
    ctx.auth = web
    app = ctx.web

    # Every write of admin.password (settings page, PATCH /api/config, env) stores a hash.
    plain_update = ctx.cfg.update

    def update(changes, save=True):
        flat = config.flatten(changes)
        pw = flat.get("admin.password")
        if isinstance(pw, str) and not is_hash(pw):
            config.check("admin.password", pw)
            flat["admin.password"] = web.hash_for_config(pw)
            web.guard.clear()
            lg.info("admin password changed")
        return plain_update(flat, save)

    ctx.cfg.update = update
    cur = ctx.cfg["admin.password"]
    if cur and not is_hash(cur):
        # A plaintext seed (config.json or PERCH_ADMIN_PASSWORD): hash it in RAM, and on
        # flash too when it came from the file.
        h = hash_password_now(cur)
        if "admin.password" in ctx.cfg.env:
            ctx.cfg.env["admin.password"] = h
        else:
            plain_update({"admin.password": h})

    def deny(req, locked=False):
        if req.path.startswith("/api/"):
            if locked:
                return Response({"error": "login locked for %d s after %d failed attempts"
                                 % (web.guard.lock_left_s(), MAX_FAILS)}, 429,
                                {"Retry-After": str(web.guard.lock_left_s())})
            return Response({"error": "authentication required"}, 401,
                            {"WWW-Authenticate": 'Basic realm="perch"'})
        nxt = req.url if req.method == "GET" else "/"
        return Response.redirect("/login?next=" + _quote(nxt))

    def own(h):
        return own_host(ctx, h)

    @app.before_request
    async def gate(req):
        if cross_site(req.method, req.headers, own):
            lg.warning("cross-site request refused", path=req.path,
                       origin=req.headers.get("Origin") or req.headers.get("Referer"))
            return Response({"error": "cross-site request refused: Origin/Referer is not "
                             "this device"}, 403)
        if not web.required() or req.path in _OPEN:
            return None
        r = await web.authenticate(req)
        if r != "ok":
            return deny(req, r == "locked")
        if req.method == "PATCH" and req.path == "/api/config":
            try:
                pw = _plain_admin_pw(json.loads(req.body or b"{}"))
            except ValueError:
                pw = None
            if pw and 0 < len(pw.encode()) <= 128:
                web._pending = {pw: await hash_password(pw)}
        return None

    @app.get("/login")
    async def login_get(req):
        return await view("login_get", ctx, req)

    @app.post("/login")
    async def login_post(req):
        return await view("login_post", ctx, req)

    @app.post("/logout")
    async def logout(req):
        tok = req.cookies.get(COOKIE)
        if tok:
            web.guard.end_session(tok)
        r = Response.redirect("/login", 303)
        r.delete_cookie(COOKIE, path="/")
        return r


_VIEWS = ("setup_views", "setup_pages")
_in_view = [0]


async def view(name, *args):
    """Run perch.setup_views.<name>(*args) with the page code loaded for this request only.

    The HTML pages are rarely used and their code is large: dropping the modules after
    each request gives that RAM back to telemetry and OTA."""
    import perch
    from perch import setup_views

    _in_view[0] += 1
    try:
        return await getattr(setup_views, name)(*args)
    finally:
        _in_view[0] -= 1
        if not _in_view[0]:
            for m in _VIEWS:
                sys.modules.pop("perch." + m, None)
                if hasattr(perch, m):
                    delattr(perch, m)


def _quote(s):
    out = []
    for ch in s.encode():
        c = chr(ch)
        if c.isalpha() or c.isdigit() or c in "/-_.~":
            out.append(c)
        else:
            out.append("%%%02X" % ch)
    return "".join(out)
