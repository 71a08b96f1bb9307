# HTTP limits in front of microdot: connection cap, bounded request head,
# read deadlines against slowloris, per-route body limits, and the captive
# redirect (which must answer every path and method, routed or not).
#
# microdot reads headers with StreamReader.readline(), which buffers a line of
# any length before checking it, and it has no read timeout. So the guard
# reads the head itself in bounded chunks, answers 4xx on its own, then hands
# microdot a reader that replays the head and continues with deadlines.
import asyncio

from micropython import const

MAX_CONNS = const(8)
LINE_MAX = const(1024)
HEAD_MAX = const(4096)
BODY_MAX = const(8 * 1024)
UPLOAD_MAX = const(8 * 1024 * 1024)
HEAD_MS = const(5000)
READ_MS = const(5000)
_CHUNK = const(512)
UPLOAD_PATHS = ("/api/ota/upload",)

_REASONS = {
    302: "Found",
    400: "Bad Request",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    414: "URI Too Long",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
}


class _Replay:
    """Stream that first serves bytes already read, then the socket, each
    socket read bounded by READ_MS."""

    def __init__(self, buf, inner):
        self._buf = buf
        self._pos = 0
        self._in = inner

    def _take(self, n):
        b = self._buf
        if b is None:
            return b""
        p = self._pos
        out = b[p:] if n < 0 else b[p:p + n]
        self._pos = p + len(out)
        if self._pos >= len(b):
            self._buf = None
        return bytes(out)

    async def read(self, n=-1):
        if self._buf is not None:
            return self._take(n)
        return await asyncio.wait_for_ms(self._in.read(n), READ_MS)

    async def readline(self):
        b = self._buf
        if b is not None:
            i = b.find(b"\n", self._pos)
            if i >= 0:
                return self._take(i + 1 - self._pos)
            head = self._take(-1)
            return head + await asyncio.wait_for_ms(self._in.readline(), READ_MS)
        return await asyncio.wait_for_ms(self._in.readline(), READ_MS)

    async def readexactly(self, n):
        head = self._take(n) if self._buf is not None else b""
        if len(head) == n:
            return head
        rest = await asyncio.wait_for_ms(self._in.readexactly(n - len(head)), READ_MS)
        return head + rest

    async def readinto(self, buf):
        if self._buf is not None:
            b = self._take(len(buf))
            buf[:len(b)] = b
            return len(b)
        return await asyncio.wait_for_ms(self._in.readinto(buf), READ_MS)


def _stalled(req, exc):
    return "request body stalled for %d ms\n" % READ_MS, 408


class HttpError(Exception):
    def __init__(self, status, msg):
        super().__init__(msg)
        self.status = status
        self.msg = msg


def parse_head(head):
    """(method, path, headers dict with lower-case keys) from the head bytes."""
    try:
        text = head.decode()
    except UnicodeError:
        raise HttpError(400, "request head is not UTF-8")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1]:
        raise HttpError(400, "malformed request line")
    hdrs = {}
    for ln in lines[1:]:
        if not ln:
            continue
        k, sep, v = ln.partition(":")
        if not sep or not k or k != k.strip():
            raise HttpError(400, "malformed header line")
        hdrs[k.lower()] = v.strip()
    return parts[0], parts[1], hdrs


def body_limit(path):
    p = path.split("?", 1)[0]
    return UPLOAD_MAX if p in UPLOAD_PATHS else BODY_MAX


def check_length(method, path, hdrs):
    cl = hdrs.get("content-length")
    if "transfer-encoding" in hdrs:
        raise HttpError(411, "chunked request bodies are not supported; send Content-Length")
    if cl is None:
        return 0
    try:
        n = int(cl)
    except ValueError:
        raise HttpError(400, "bad Content-Length")
    if n < 0:
        raise HttpError(400, "bad Content-Length")
    lim = body_limit(path)
    if n > lim:
        raise HttpError(413, "body of %d bytes is over the %d byte limit" % (n, lim))
    return n


async def read_head(reader):
    """Bytes up to and including the blank line, plus any bytes after it."""
    buf = bytearray()
    end = -1
    while end < 0:
        chunk = await reader.read(_CHUNK)
        if not chunk:
            if not buf:
                return None, None
            raise HttpError(400, "connection closed inside the request head")
        start = len(buf) - 3 if len(buf) > 3 else 0
        buf += chunk
        if buf[0] == 0x16:
            raise HttpError(400, "this is a TLS handshake; the device serves plain http://")
        end = buf.find(b"\r\n\r\n", start)
        line_end = buf.find(b"\r\n")
        if (line_end < 0 and len(buf) > LINE_MAX) or line_end > LINE_MAX:
            raise HttpError(414, "request line over %d bytes" % LINE_MAX)
        if (end < 0 and len(buf) > HEAD_MAX) or end > HEAD_MAX:
            raise HttpError(431, "request head over %d bytes" % HEAD_MAX)
    return buf[:end + 4], buf[end + 4:]


class Guard:
    def __init__(self, app, log=None):
        self.app = app
        self.log = log
        self.active = 0
        self.rejected = 0
        self.redirect = None  # callable(host, peer) -> location or None (captive portal)
        self._inner = app.handle_request
        app.handle_request = self.handle
        # Our own limits apply first; microdot's global cap must admit uploads.
        from microdot import Request

        Request.max_content_length = UPLOAD_MAX
        app.errorhandler(asyncio.TimeoutError)(_stalled)

    async def _reply(self, writer, status, msg, extra=""):
        body = msg.encode()
        head = "HTTP/1.0 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n" % (
            status, _REASONS.get(status, "Error"))
        head += "Content-Length: %d\r\nConnection: close\r\n%s\r\n" % (len(body), extra)
        try:
            await writer.awrite(head.encode() + body)
        except OSError:
            pass

    async def _close(self, writer):
        try:
            await writer.aclose()
        except OSError:
            pass

    async def handle(self, reader, writer):
        if self.active >= MAX_CONNS:
            self.rejected += 1
            # Drain what the client already sent so close() does not turn into
            # a reset that hides the answer.
            try:
                await asyncio.wait_for_ms(reader.read(HEAD_MAX), 200)
            except (asyncio.TimeoutError, OSError):
                pass
            await self._reply(writer, 429, "too many connections, retry shortly\n",
                              "Retry-After: 1\r\n")
            await self._close(writer)
            return
        self.active += 1
        try:
            await self._serve(reader, writer)
        finally:
            self.active -= 1

    async def _serve(self, reader, writer):
        try:
            try:
                got = await asyncio.wait_for_ms(read_head(reader), HEAD_MS)  # type: tuple
            except asyncio.TimeoutError:
                raise HttpError(408, "request head not received within %d ms" % HEAD_MS)
            head, rest = got
            if head is None or rest is None:
                await self._close(writer)
                return
            method, path, hdrs = parse_head(head)
            n = check_length(method, path, hdrs)
            if len(rest) < n <= BODY_MAX:
                # Small bodies are read here, under the deadline, so a stalled one gets a
                # 408 instead of a parse error deep in microdot.
                try:
                    rest += await asyncio.wait_for_ms(reader.readexactly(n - len(rest)), READ_MS)
                except asyncio.TimeoutError:
                    raise HttpError(408, "request body not received within %d ms" % READ_MS)
                except EOFError:
                    raise HttpError(400, "connection closed inside the request body")
            if self.redirect is not None:
                loc = self.redirect(hdrs.get("host", ""), writer.get_extra_info("peername"))
                if loc:
                    await self._reply(writer, 302, "captive portal: " + loc + "\n",
                                      "Location: %s\r\nCache-Control: no-store\r\n" % loc)
                    await self._close(writer)
                    return
        except HttpError as e:
            if self.log:
                self.log.warning("http rejected", status=e.status, why=e.msg)
            await self._reply(writer, e.status, e.msg + "\n")
            await self._close(writer)
            return
        except OSError:
            await self._close(writer)
            return
        try:
            await self._inner(_Replay(head + rest, reader), writer)
        except (asyncio.TimeoutError, OSError):
            # Body stalled or peer vanished mid-request: drop the connection.
            await self._close(writer)
