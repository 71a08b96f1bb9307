# HTTP limits in front of microdot: connection cap, bounded request head,
# read deadlines against slowloris, per-route body limits, and the captive
# redirect (which must answer every path and method, routed or not).
#
# microdot reads headers with StreamReader.readline(), which buffers a line of
# any length before checking it, and it has no read timeout. So the guard
# reads the head itself in bounded chunks under a deadline, answers 4xx on its
# own, and builds microdot's Request from what it parsed: parsing the head a
# second time would double the per-request cost. Only an upload's large body
# is left on the socket, behind a perch.replay reader with per-read deadlines.
#
# The guard is this module (web.py: ctx.guard): its state is module globals, as
# there is one server. Speed: every new str is looked up in the interned-string
# tables, which grow with each loaded module, so the head is parsed as bytes
# and only the parts a handler reads become str.
import asyncio
import time

from microdot import Request, Response
from microdot.microdot import NoCaseDict
from micropython import const

MAX_CONNS = const(8)
LINE_MAX = const(1024)
HEAD_MAX = const(4096)
BODY_MAX = const(8 * 1024)
UPLOAD_MAX = const(8 * 1024 * 1024)
HEAD_MS = const(5000)
READ_MS = const(5000)
_CHUNK = const(512)
_OUT = const(1024)  # response bytes gathered into one send
_TICK = const(250)  # how often read deadlines are checked

# Status lines of the guard's own answers; one string costs less than a dict.
_STATUS = (
    "302 Found|400 Bad Request|408 Request Timeout|411 Length Required|"
    "413 Content Too Large|414 URI Too Long|429 Too Many Requests|"
    "431 Request Header Fields Too Large|"
)

app = None
log = None
redirect = None  # callable(host, peer) -> location or None (captive portal)
active = 0
_live = []  # [task, deadline ms, or None once expired] per request being read
_sweeper = None


class HttpError(Exception):
    """args: (status, message)"""


def install(a, lg):
    global app, log
    app = a
    log = lg
    a.handle_request = handle
    # Our own limits apply first; microdot's global cap must admit uploads.
    Request.max_content_length = UPLOAD_MAX


def parse_head(head):
    """(method, url, HTTP version, headers) from the head bytes, which end in a
    blank line. The headers are microdot's NoCaseDict: found under any spelling."""
    e = head.find(b"\r\n")
    parts = head[:e].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not parts[1]:
        raise HttpError(400, "malformed request line")
    hdrs = NoCaseDict()
    p = e + 2
    last = len(head) - 2  # the blank line that ends the head
    try:
        while p < last:
            e = head.find(b"\r\n", p)
            i = head.find(b":", p, e)
            # A name must be non-empty, with no space before the colon (RFC 9112 5.1).
            if i <= p or head[p] <= 32 or head[i - 1] <= 32:
                raise HttpError(400, "malformed header line")
            hdrs[head[p:i].lower().decode()] = head[i + 1 : e].strip().decode()
            p = e + 2
        return parts[0].decode(), parts[1].decode(), parts[2][5:].decode(), hdrs
    except UnicodeError:
        raise HttpError(400, "request head is not UTF-8")


def body_limit(path):
    return UPLOAD_MAX if path.split("?", 1)[0] == "/api/ota/upload" else BODY_MAX


async def _reply(writer, status, msg, extra=""):
    # A plain-text answer of the guard's own, then the connection is closed.
    body = msg.encode()
    i = _STATUS.find("%d " % status)
    head = "HTTP/1.0 %s\r\nContent-Type: text/plain; charset=utf-8\r\n" % (
        _STATUS[i : _STATUS.find("|", i)] if i >= 0 else "%d Error" % status
    )
    head += "Content-Length: %d\r\nConnection: close\r\n%s\r\n" % (len(body), extra)
    try:
        await writer.awrite(head.encode() + body)
    except OSError:
        pass
    await _close(writer)


async def _close(writer):
    try:
        await writer.aclose()
    except OSError:
        pass


async def _sweep():
    # One task keeps every connection's read deadline: asyncio.wait_for_ms
    # would cost two tasks and a cancellation on each request. It runs only
    # while requests are being read.
    global _sweeper
    try:
        while _live:
            await asyncio.sleep_ms(_TICK)
            now = time.ticks_ms()
            for w in _live:
                if w[1] is not None and time.ticks_diff(now, w[1]) >= 0:
                    w[1] = None
                    w[0].cancel()
    finally:
        _sweeper = None


async def handle(reader, writer):
    global active, _sweeper
    if active >= MAX_CONNS:
        # Drain what the client already sent so close() does not turn into
        # a reset that hides the answer.
        try:
            await asyncio.wait_for_ms(reader.read(HEAD_MAX), 200)
        except (asyncio.TimeoutError, OSError):
            pass
        await _reply(writer, 429, "too many connections, retry shortly\n", "Retry-After: 1\r\n")
        return
    active += 1
    try:
        try:
            what, ms = "request head", HEAD_MS
            w = [asyncio.current_task(), time.ticks_add(time.ticks_ms(), ms)]
            _live.append(w)
            if _sweeper is None:
                _sweeper = asyncio.create_task(_sweep())
            try:
                # The head: bytes up to and including the blank line, in bounded chunks.
                buf = bytearray()
                end = -1
                while end < 0:
                    chunk = await reader.read(_CHUNK)
                    if not chunk:
                        if buf:
                            raise HttpError(400, "connection closed inside the request head")
                        await _close(writer)
                        return
                    start = len(buf) - 3 if len(buf) > 3 else 0
                    buf += chunk
                    if buf[0] == 0x16:
                        raise HttpError(
                            400, "this is a TLS handshake; the device serves plain http://"
                        )
                    end = buf.find(b"\r\n\r\n", start)
                    e = buf.find(b"\r\n")
                    if (e < 0 and len(buf) > LINE_MAX) or e > LINE_MAX:
                        raise HttpError(414, "request line over %d bytes" % LINE_MAX)
                    if (end < 0 and len(buf) > HEAD_MAX) or end > HEAD_MAX:
                        raise HttpError(431, "request head over %d bytes" % HEAD_MAX)
                end += 4
                rest = bytes(memoryview(buf)[end:])
                method, url, ver, hdrs = parse_head(bytes(memoryview(buf)[:end]))
                buf = None
                if "transfer-encoding" in hdrs:
                    raise HttpError(
                        411, "chunked request bodies are not supported; send Content-Length"
                    )
                try:
                    n = int(hdrs.get("content-length", 0))
                except ValueError:
                    n = -1
                if n < 0:
                    raise HttpError(400, "bad Content-Length")
                lim = body_limit(url)
                if n > lim:
                    raise HttpError(413, "body of %d bytes is over the %d byte limit" % (n, lim))
                stream = None
                if n > BODY_MAX:
                    # Only the upload route gets here; its handler streams the body.
                    from perch.replay import Replay

                    stream = Replay(rest, reader)
                    rest = b""
                elif len(rest) < n:
                    # Read here, under a deadline, so a stalled body gets a 408 instead
                    # of a parse error deep in microdot.
                    what, ms = "request body", READ_MS
                    w[1] = time.ticks_add(time.ticks_ms(), ms)
                    try:
                        rest += await reader.readexactly(n - len(rest))
                    except EOFError:
                        raise HttpError(400, "connection closed inside the request body")
                elif len(rest) > n:
                    rest = rest[:n]
            except asyncio.CancelledError:
                if w[1] is not None:
                    raise  # not our deadline: the server is shutting down
                raise HttpError(408, "%s not received within %d ms" % (what, ms))
            finally:
                _live.remove(w)
            peer = writer.get_extra_info("peername")
            if redirect is not None:
                loc = redirect(hdrs.get("host", ""), peer)
                if loc:
                    await _reply(
                        writer,
                        302,
                        "captive portal: " + loc + "\n",
                        "Location: %s\r\nCache-Control: no-store\r\n" % loc,
                    )
                    return
            try:
                req = Request(app, peer, method, url, ver, hdrs, body=rest, stream=stream)
            except ValueError:
                raise HttpError(400, "malformed query string")
        except HttpError as e:
            if log:
                log.warning("http rejected", status=e.args[0], why=e.args[1])
            await _reply(writer, e.args[0], e.args[1] + "\n")
            return
        except OSError:
            await _close(writer)
            return
        # microdot awaits the status line, each header and the body separately, and each
        # await would be a send of its own plus a trip through the scheduler: gather them
        # into sends of up to _OUT bytes (a streamed page is still never whole in RAM).
        out = bytearray()
        send = writer.awrite

        async def gather(data):
            if len(out) + len(data) > _OUT:
                if out:
                    await send(out)
                    out[:] = b""
                if len(data) >= _OUT:
                    await send(data)
                    return
            out.extend(data)

        try:
            # What microdot's handle_request does once it has a Request.
            res = await app.dispatch_request(req)
            if res is not Response.already_handled:
                writer.awrite = gather
                await res.write(writer)
            if out:
                await send(out)
        except (asyncio.TimeoutError, OSError):
            # Body stalled or peer vanished mid-request: drop the connection.
            pass
        finally:
            await _close(writer)
    finally:
        active -= 1
