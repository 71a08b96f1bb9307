# HTML: the template renderer, the page shell, the stylesheet, and the status and logs pages.
#
# Pages are plain HTML forms that work without JavaScript in a phone's captive mini-browser;
# scripts only refresh what is already shown. Nothing is loaded from outside the device.
# The markup is in pages.html, which the build compiles to pages.bin next to this module:
# it is streamed from flash in small pieces, so no page and no markup string sits in RAM.
from microdot import Response
from micropython import const

# Blocks of pages.html (the build checks these numbers)
_B_HEAD = const(0)
_B_TAIL = const(1)
_B_STATUS = const(5)
_B_STATUS_JS = const(6)
_B_LOGS = const(7)
_B_LOGS_JS = const(8)
_CHUNK = const(512)

_DIR = __file__[: __file__.rfind("/") + 1]


def _read(pos, n):
    # Open per piece: a page abandoned half-way (client gone) holds no file open.
    with open(_DIR + "pages.bin", "rb") as f:
        f.seek(pos)
        return f.read(n)


def esc(s):
    s = str(s)
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#39;")):
        if a in s:
            s = s.replace(a, b)
    return s


def fill(v):
    """Yield v as HTML: bytes and memoryviews (template output, or markup constants of the
    code) as they are, str and int escaped, None and False as nothing, anything else (tuples,
    lists, generators of such) item by item."""
    if isinstance(v, (bytes, memoryview)):
        yield v
    elif isinstance(v, str):
        yield esc(v)
    elif v is None or v is False:
        return
    elif isinstance(v, int):
        yield str(v)
    else:
        for x in v:
            yield from fill(x)


def render(b, vals=()):
    """Yield block b of pages.bin with its slots filled from vals (see fill)."""
    h = _read(2 * b, 4)
    pos = h[0] | h[1] << 8
    end = h[2] | h[3] << 8
    while pos < end:
        c = _read(pos, min(end - pos, _CHUNK))
        pos += len(c)
        m = memoryview(c)
        i = 0
        while i < len(c):
            j = c.find(b"\0", i)
            if j < 0:
                yield m[i:]
                break
            if j > i:
                yield m[i:j]
            if j + 1 < len(c):
                k = c[j + 1]
            else:  # the slot's number starts the next piece
                k = _read(pos, 1)[0]
                pos += 1
            yield from fill(vals[k])
            i = j + 2


def page(ctx, title, body, script=0):
    """The page: shell around body (see fill); script: a script block's number."""
    yield from render(_B_HEAD, (title, ctx.device_id, ctx.cfg["name"] or ctx.device_id))
    yield from fill(body)
    yield from render(_B_TAIL, (render(script) if script else None,))


def html(body, status=200):
    return Response(body, status, {"Content-Type": "text/html; charset=utf-8"})


def stylesheet():
    # Gzipped at build time (the ESP32 port's deflate cannot compress); 651 bytes.
    with open(_DIR + "style.css.gz", "rb") as f:
        css = f.read()
    return Response(css, headers={
        "Content-Type": "text/css", "Content-Encoding": "gzip",
        "Cache-Control": "max-age=86400"})


def status_page(ctx):
    s = ctx.snapshot()
    w, m, o = s["wifi"], s["mqtt"], s["ota"]
    return page(ctx, "Status", render(_B_STATUS, (
        s["name"], s["device_id"], s["version"], s["previous_version"] or "none",
        s["uptime_s"], s["mem"]["free"],
        o["state"] + (" – " + o["last_error"] if o["last_error"] else ""),
        s["mode"], w["ssid"] or "not connected", w["ip"] or "–",
        "%s dBm" % w["rssi"] if w["rssi"] else "–",
        m["state"], m["broker"] or "not set", m["sent"], m["queued"], m["dropped"],
        m["last_error"] or "none")), _B_STATUS_JS)


def logs_page(ctx):
    from perch import log

    # Line by line: the whole ring as one string would need a block of several KB. The
    # newline before the first line is one that HTML drops right after <pre>.
    seq = log.last_seq()
    lines = (x for _, line in log.since(0) for x in ("\n", line))
    return page(ctx, "Logs", render(_B_LOGS, (seq, lines)), _B_LOGS_JS)
