# The update server's side of OTA: a minimal asyncio HTTP/1.0 GET client (redirects, Range
# resume, HTTPS where the port has TLS; bodies read in caller-sized chunks, never whole), the
# signed version list (index.json), and installs by download (with ota_install). Loaded only
# for these: without ota.server, GET /api/ota and the page never load it.
import asyncio
import hashlib
import json
import time

from micropython import const

from perch import bundle

_MAX_REDIRECTS = const(5)
_MAX_HEADER = const(512)
_TIMEOUT_S = const(15)
_INDEX_MAX = const(16384)
_INDEX_TTL_MS = const(30000)


class HTTPError(Exception):
    pass


def split_url(url):
    # -> (tls, host, port, path)
    if url.startswith("http://"):
        tls, rest, port = False, url[7:], 80
    elif url.startswith("https://"):
        tls, rest, port = True, url[8:], 443
    else:
        raise HTTPError("unsupported URL (need http:// or https://): %s" % url)
    host, _, path = rest.partition("/")
    if ":" in host:
        host, _, p = host.partition(":")
        try:
            port = int(p)
        except ValueError:
            raise HTTPError("bad port in URL: %s" % url)
    if not host:
        raise HTTPError("no host in URL: %s" % url)
    return tls, host, port, "/" + path


def join(base, ref):
    # resolve a Location header or an index "file" entry against a base URL
    if ref.startswith("http://") or ref.startswith("https://"):
        return ref
    tls, host, port, path = split_url(base)
    origin = "%s://%s:%d" % ("https" if tls else "http", host, port)
    if ref.startswith("/"):
        return origin + ref
    return origin + path.rpartition("/")[0] + "/" + ref


class Response:
    """An open response: status, length (Content-Length or None), readinto(mv) async."""

    def __init__(self, reader, writer, status, length, url):
        self.r = reader
        self.w = writer
        self.status = status
        self.length = length
        self.url = url

    async def readinto(self, mv):
        try:
            n = await asyncio.wait_for(self.r.readinto(mv), _TIMEOUT_S)
        except asyncio.TimeoutError:
            raise HTTPError("download stalled for %d s" % _TIMEOUT_S)
        return n or 0

    def close(self):
        try:
            self.w.close()
        except Exception:
            pass


async def _connect(host, port, ssl):
    if ssl:
        conn = asyncio.open_connection(host, port, ssl=ssl)
    else:
        conn = asyncio.open_connection(host, port)
    return await asyncio.wait_for(conn, _TIMEOUT_S)


async def _open(url, offset):
    tls, host, port, path = split_url(url)
    ssl = None
    if tls:
        try:
            import ssl as _ssl
        except ImportError:
            raise HTTPError("this port has no TLS for https://")
        ctx = _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
        # No CA bundle on the board: authenticity comes from the bundle signature.
        setattr(ctx, "verify_mode", _ssl.CERT_NONE)  # noqa: B010 - not in every port's stubs
        ssl = ctx
    try:
        r, w = await _connect(host, port, ssl)
    except asyncio.TimeoutError:
        raise HTTPError("connect to %s:%d timed out" % (host, port))
    except OSError as e:
        why = "no network (name lookup failed)" if e.args and e.args[0] == -2 else str(e)
        raise HTTPError("cannot connect to %s:%d: %s" % (host, port, why))
    req = "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: perch\r\n" % (path, host)
    if offset:
        req += "Range: bytes=%d-\r\n" % offset
    w.write(req.encode() + b"\r\n")
    await w.drain()
    try:
        line = await asyncio.wait_for(r.readline(), _TIMEOUT_S)
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise HTTPError("not an HTTP response from %s" % host)
        status = int(parts[1])
        length = None
        location = None
        while True:
            h = await asyncio.wait_for(r.readline(), _TIMEOUT_S)
            if not h or h == b"\r\n" or h == b"\n":
                break
            if len(h) > _MAX_HEADER:
                raise HTTPError("response header too long")
            k, _, v = h.decode().partition(":")
            k = k.strip().lower()
            if k == "content-length":
                length = int(v.strip())
            elif k == "location":
                location = v.strip()
    except asyncio.TimeoutError:
        w.close()
        raise HTTPError("no response from %s:%d" % (host, port))
    except (ValueError, HTTPError):
        w.close()
        raise
    return Response(r, w, status, length, url), location


async def get(url, offset=0):
    """Open url, following redirects; returns a Response with status 200 or 206."""
    for _ in range(_MAX_REDIRECTS + 1):
        resp, location = await _open(url, offset)
        if resp.status in (301, 302, 303, 307, 308) and location:
            resp.close()
            url = join(url, location)
            continue
        if resp.status == 200 or (offset and resp.status == 206):
            return resp
        resp.close()
        raise HTTPError("HTTP %d from %s" % (resp.status, url))
    raise HTTPError("too many redirects")


class Download:
    """A bundle source (see bundle.py) over an HTTP download that resumes with Range when the
    link drops; hashes what passes when h is given."""

    def __init__(self, resp, h=None):
        self.resp = resp
        self.url = resp.url
        self.total = resp.length
        self.got = 0
        self.h = h
        self.tries = 3

    def readinto(self, mv):
        # what the socket has now; an end or an error is left to wait(), which resumes
        try:
            n = self.resp.r.s.readinto(mv)
        except (OSError, AttributeError):
            return None
        return self._got(mv, n) if n else None

    def _got(self, mv, n):
        self.got += n
        if self.h is not None:
            self.h.update(mv[:n])
        return n

    async def wait(self, mv):
        while True:
            resp = self.resp
            try:
                n = await resp.readinto(mv)
            except (OSError, HTTPError) as e:
                n = -1
                err = e
            if n > 0:
                return self._got(mv, n)
            if self.total is None or self.got >= self.total:
                return 0
            # the connection ended early: resume where it stopped
            if self.tries <= 0:
                raise HTTPError("download failed at %d of %d bytes%s" % (
                    self.got, self.total, ": %s" % err if n < 0 else ""))
            self.tries -= 1
            resp.close()
            self.resp = await get(self.url, self.got)
            if self.resp.status != 206:
                raise HTTPError("server ignored Range; cannot resume")

async def fetch(url, limit):
    """A small whole document (index.json), at most `limit` bytes."""
    resp = await get(url)
    try:
        if resp.length is not None and resp.length > limit:
            raise HTTPError("%s is too large (%d bytes)" % (url, resp.length))
        buf = bytearray(limit if resp.length is None else resp.length)
        mv = memoryview(buf)
        got = 0
        while got < len(buf):
            n = await resp.readinto(mv[got:])
            if not n:
                break
            got += n
        if resp.length is not None and got != resp.length:
            raise HTTPError("%s truncated" % url)
        if resp.length is None and got == limit:
            raise HTTPError("%s is too large" % url)
        # json.loads takes the bytearray: no copy when the length was known
        return buf if got == len(buf) else bytes(mv[:got])
    finally:
        resp.close()


# ---------------------------------------------------------------- the update server


async def releases(o, force=False):
    """The update server's release list (cached), or [] with index_error set."""
    server = o.ctx.cfg["ota.server"]
    if not server:
        o.index_error = "ota.server is not set"
        return []
    now = time.ticks_ms()
    if (not force and o.index is not None and o.index_ms is not None
            and time.ticks_diff(now, o.index_ms) < _INDEX_TTL_MS):
        return o.index
    try:
        o.index = parse_index(o, await fetch(server.rstrip("/") + "/index.json", _INDEX_MAX))
        o.index_error = None
        o.index_ms = now
    except (HTTPError, bundle.BundleError, OSError, ValueError) as e:
        # not cached: the next look retries (the station may just not be up yet)
        o.index_error = "update server: %s" % e
        o.index = o.index or []
    return o.index


def parse_index(o, raw):
    doc = json.loads(raw)
    raw = None
    signed = doc.get("signed")
    if not isinstance(signed, str):
        raise bundle.BundleError("index.json has no signed part")
    sig = doc.get("signature")
    doc = None
    cfg = o.ctx.cfg
    if sig:
        keys = cfg["ota.keys"]
        if not keys:
            raise bundle.BundleError("no trusted key configured (ota.keys is empty)")
        try:
            sig = bytes.fromhex(sig)
        except ValueError:
            raise bundle.BundleError("index.json signature is not hex")
        digest = hashlib.sha256(signed.encode()).digest()
        if len(sig) != 256 or not bundle.rsa_verify(digest, sig, keys):
            raise bundle.BundleError("index.json: bad signature")
    elif not cfg["ota.allow_unsigned"]:
        raise bundle.BundleError("index.json is unsigned (ota.allow_unsigned is off)")
    rels = json.loads(signed).get("releases")
    if not isinstance(rels, list):
        raise bundle.BundleError("index.json has no release list")
    out = [r for r in rels if isinstance(r, dict) and isinstance(r.get("version"), str)
           and r.get("file")]
    out.sort(key=lambda r: bundle.parse_version(r["version"]), reverse=True)
    return out


async def resolve(o, version):
    for r in await releases(o, True):
        if r["version"] == version:
            return r
    if o.index_error:
        raise ValueError(o.index_error)
    raise LookupError("version %s is not on the update server" % version)


async def install_url(o, url, expect=None):
    """Download and install; `expect` is the index entry (size and sha256 checked too)."""
    from perch.ota_install import fail, installed, reader, sink

    expect = expect or {}
    want = expect.get("sha256")
    dl = None
    try:
        dl = Download(await get(url), hashlib.sha256() if want else None)
        r = reader(o, dl.total or expect.get("size") or 0)

        def check():
            if expect.get("size") not in (None, dl.got):
                raise bundle.BundleError("size %d differs from index.json (%d)"
                                         % (dl.got, expect["size"]))
            if want and dl.h.digest().hex() != want:
                raise bundle.BundleError("sha256 differs from index.json")

        man = await r.run(dl, sink, check)
    except (bundle.BundleError, HTTPError, OSError, ValueError) as e:
        fail(o, str(e))
        return
    finally:
        if dl:
            dl.resp.close()
    installed(o, man)


async def available(o):
    # the version list of GET /api/ota, marked against the running version and the floor
    rels = await releases(o)
    floor = o.ctx.cfg["ota.min_version"]
    cur = o.ctx.version
    avail = []
    for r in rels:
        v = r["version"]
        app = r.get("type", "app") == "app"
        # firmware images have their own version line: no current/downgrade against the app
        avail.append({"version": v, "type": "app" if app else "firmware",
                      "size": r.get("size"), "date": r.get("date"),
                      "notes": r.get("notes"), "current": app and v == cur,
                      "downgrade": app and bundle.version_lt(v, cur),
                      "allowed": not app or not bundle.version_lt(v, floor)})
    return avail


async def install(o, v, url):
    # from the update server's list (by version) or from any URL; the download runs as a task
    from perch.ota_install import begin, check, fail

    if isinstance(v, str):
        bundle.parse_version(v)
        check(o, v)
        begin(o, v, "downloading")
        try:
            rel = await resolve(o, v)
        except Exception as e:
            fail(o, str(e))
            raise
        url = join(o.ctx.cfg["ota.server"].rstrip("/") + "/index.json", rel["file"])
    elif isinstance(url, str):
        check(o)
        split_url(url)
        begin(o, url, "downloading")
        rel = None
    else:
        raise ValueError('body needs "version" or "url"')

    async def job():
        try:
            await install_url(o, url, rel)
        except Exception as e:
            fail(o, "%s: %s" % (type(e).__name__, e))

    o.task = asyncio.create_task(job())
