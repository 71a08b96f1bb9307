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
# The guard is this module (web.py sets it up; ctx.guard): its state is module
# globals, as there is one server. Speed: every new str is looked up in the
# interned-string tables, which grow with each loaded module, so the head is
# parsed as bytes and only the parts a handler reads become str.
import asyncio
import sys
import time

from microdot import Microdot, Request, Response
from microdot.microdot import NoCaseDict
from micropython import const

from perch.config import drop, lazy

_MAX_CONNS = const(8)
_LINE_MAX = const(1024)
_HEAD_MAX = const(4096)
_BODY_MAX = const(8 * 1024)
_UPLOAD_MAX = const(8 * 1024 * 1024)
_READ_MS = const(5000)  # the head, and a body's each read (perch.replay, web's 408)
_CHUNK = const(512)
_OUT = const(1024)  # response bytes gathered into one send

# The guard's own answers (status line, message) are perch.httpreply's, loaded per use:
# their text is rare next to a served request. _E_*: the messages' numbers there.
_E_LINE = const(0)
_E_HEADER = const(1)
_E_UTF8 = const(2)
_E_CLOSED = const(3)
_E_TLS = const(4)
_E_URI = const(5)
_E_HEAD = const(6)
_E_CHUNKED = const(7)
_E_LENGTH = const(8)
_E_BODY = const(9)
_E_SLOW = const(10)
_E_QUERY = const(11)
_E_BUSY = const(12)
_E_CAPTIVE = const(13)

app: Microdot = None  # type: ignore[assignment]  # set by perch.start, with log
log = None
redirect = None  # callable(host, peer) -> location or None (captive portal)
active = 0
_live: list = []  # [task, deadline ms, or None once expired] per request being read
# The response buffer, None while a request has it (see handle)
_out: "bytearray | None" = bytearray(_OUT)


class HttpError(Exception):
    """args: (status, message number[, its % arguments])"""


def parse_head(head):
    """(method, url, HTTP version, headers) from the head bytes, which end in a
    blank line. The headers are microdot's NoCaseDict: found under any spelling."""
    e = head.find(b"\r\n")
    parts = head[:e].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not parts[1]:
        raise HttpError(400, _E_LINE)
    hdrs = NoCaseDict()
    p = e + 2
    last = len(head) - 2  # the blank line that ends the head
    try:
        while p < last:
            e = head.find(b"\r\n", p)
            i = head.find(b":", p, e)
            # A name must be non-empty, with no space before the colon (RFC 9112 5.1).
            if i <= p or head[p] <= 32 or head[i - 1] <= 32:
                raise HttpError(400, _E_HEADER)
            hdrs[head[p:i].lower().decode()] = head[i + 1 : e].strip().decode()
            p = e + 2
        return parts[0].decode(), parts[1].decode(), parts[2][5:].decode(), hdrs
    except UnicodeError:
        raise HttpError(400, _E_UTF8)


def body_limit(path):
    return _UPLOAD_MAX if path.split("?", 1)[0] == "/api/ota/upload" else _BODY_MAX


async def _reply(writer, e, extra=""):
    # The guard's answer e (HttpError's args) as plain text, then the connection is closed.
    try:
        await writer.awrite(lazy("httpreply").answer(e, extra))
    except OSError:
        pass
    _close(writer)


def _close(writer):
    # What the stream's aclose() does, without a coroutine.
    try:
        writer.s.close()
    except OSError:
        pass


def sweep():
    # perch.app's watch loop calls this about every 250 ms: the one task that keeps every
    # connection's read deadline, where asyncio.wait_for_ms would cost two tasks and a
    # cancellation on each request.
    now = time.ticks_ms()
    for w in _live:
        if w[1] is not None and time.ticks_diff(now, w[1]) >= 0:
            w[1] = None
            w[0].cancel()


async def handle(reader, writer):
    global active, _out
    if active >= _MAX_CONNS:
        # Drain what the client already sent so close() does not turn into
        # a reset that hides the answer.
        try:
            await asyncio.wait_for_ms(reader.read(_HEAD_MAX), 200)
        except (asyncio.TimeoutError, OSError):
            pass
        await _reply(writer, (429, _E_BUSY), "Retry-After: 1\r\n")
        return
    active += 1
    try:
        try:
            what = "head"
            w = [asyncio.current_task(), time.ticks_add(time.ticks_ms(), _READ_MS)]
            _live.append(w)
            try:
                # The head: bytes up to and including the blank line, in bounded chunks.
                buf = bytearray()
                end = -1
                while end < 0:
                    chunk = await reader.read(_CHUNK)
                    if not chunk:
                        if buf:
                            raise HttpError(400, _E_CLOSED, what)
                        _close(writer)
                        return
                    start = len(buf) - 3 if len(buf) > 3 else 0
                    buf += chunk
                    if buf[0] == 0x16:
                        raise HttpError(400, _E_TLS)
                    end = buf.find(b"\r\n\r\n", start)
                    e = buf.find(b"\r\n")
                    if (e < 0 and len(buf) > _LINE_MAX) or e > _LINE_MAX:
                        raise HttpError(414, _E_URI)
                    if (end < 0 and len(buf) > _HEAD_MAX) or end > _HEAD_MAX:
                        raise HttpError(431, _E_HEAD)
                end += 4
                rest = bytes(memoryview(buf)[end:])
                method, url, ver, hdrs = parse_head(bytes(memoryview(buf)[:end]))
                del buf
                if "transfer-encoding" in hdrs:
                    raise HttpError(411, _E_CHUNKED)
                try:
                    n = int(hdrs.get("content-length", 0))
                except ValueError:
                    n = -1
                if n < 0:
                    raise HttpError(400, _E_LENGTH)
                lim = body_limit(url)
                if n > lim:
                    raise HttpError(413, _E_BODY, (n, lim))
                stream = None
                if n > _BODY_MAX:
                    # Only the upload route gets here; its handler streams the body.
                    from perch.replay import Replay

                    stream = Replay(rest, reader)
                    rest = b""
                elif len(rest) < n:
                    # Read here, under a deadline, so a stalled body gets a 408 instead
                    # of a parse error deep in microdot.
                    what = "body"
                    w[1] = time.ticks_add(time.ticks_ms(), _READ_MS)
                    try:
                        rest += await reader.readexactly(n - len(rest))
                    except EOFError:
                        raise HttpError(400, _E_CLOSED, what)
                elif len(rest) > n:
                    rest = rest[:n]
            except asyncio.CancelledError:
                if w[1] is not None:
                    raise  # not our deadline: the server is shutting down
                raise HttpError(408, _E_SLOW, what)
            finally:
                _live.remove(w)
            peer = writer.get_extra_info("peername")
            if redirect is not None:
                loc = redirect(hdrs.get("host", ""), peer)
                if loc:
                    await _reply(
                        writer,
                        (302, _E_CAPTIVE, loc),
                        "Location: %s\r\nCache-Control: no-store\r\n" % loc,
                    )
                    return
            try:
                req = Request(app, peer, method, url, ver, hdrs, body=rest, stream=stream)
            except ValueError:
                raise HttpError(400, _E_QUERY)
        except HttpError as e:
            await _reply(writer, e.args)
            return
        except OSError:
            _close(writer)
            return
        # microdot awaits the status line, each header and the body separately, and each
        # await would be a send of its own plus a trip through the scheduler: gather them
        # into sends of up to _OUT bytes (a streamed page is still never whole in RAM).
        # One buffer made at boot serves the requests one at a time: a 1 KB block asked for
        # per request is what fails first on a heap that page code has fragmented.
        out = _out or bytearray(_OUT)
        _out = None
        mv = memoryview(out)
        # idle till the handler returns: an upload copies through it (ota.blocks)
        req.out = out  # type: ignore[attr-defined]
        n = 0
        send = writer.awrite

        async def gather(data):
            nonlocal n
            k = len(data)
            if n + k > _OUT:
                if n:
                    await send(mv[:n])
                    n = 0
                if k >= _OUT:
                    await send(data)
                    return
            mv[n : n + k] = data
            n += k

        try:
            # What microdot's handle_request does once it has a Request.
            res = await app.dispatch_request(req)
            if res is not Response.already_handled:
                writer.awrite = gather
                await res.write(writer)
            if n:
                await send(mv[:n])
        except (asyncio.TimeoutError, OSError):
            # Body stalled or peer vanished mid-request: drop the connection.
            pass
        finally:
            _close(writer)
            if _out is None:
                _out = out
            # Every page loads perch.pages (web.py, the page modules, ota's): drop it once the
            # page is out, so that its code is not kept in RAM between the (rare) pages.
            if "perch.pages" in sys.modules:
                drop("pages")
    finally:
        active -= 1
