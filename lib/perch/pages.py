# HTML: the template streamer, the page shell, the stylesheet, and the status and logs pages.
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


def _read(pos, n, mv=None, name="pages.bin"):
    # n bytes from pos, into mv (a page's buffer, see stream) when given. Open per piece: a
    # page abandoned half-way (client gone) holds no file open. A board running only the
    # factory image has no slot: its frozen copy is read in place in flash.
    try:
        with open(_DIR + name, "rb") as f:
            f.seek(pos)
            if mv is None:
                return f.read(n)
            return mv[: f.readinto(mv[:n])]
    except OSError:
        import perch_assets

        data = perch_assets.PAGES if name == "pages.bin" else perch_assets.STYLE
        return data[pos:] if n < 0 else data[pos:pos + n]


def esc(s):
    s = str(s)
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#39;")):
        if a in s:
            s = s.replace(a, b)
    return s


def _block(mv, b, vals=()):
    # Block b of pages.bin, piece by piece (see tools/build.py), with the values of its slots
    # in between, read into the page's buffer mv: a piece is sent (copied) before the next is
    # read, and what a piece says about the next is taken before a slot's value goes out.
    h = _read(2 * b, 2, mv)
    pos = h[0] | h[1] << 8
    h = _read(pos, 2, mv)
    n = h[0] | h[1] << 8
    pos += 2
    while True:
        while n > _CHUNK:
            yield _read(pos, _CHUNK, mv)
            pos += _CHUNK
            n -= _CHUNK
        c = _read(pos, n + 3, mv)
        pos += n + 3
        k = c[n]
        if k != 255:
            nxt = c[n + 1] | c[n + 2] << 8
        if n:
            yield c[:n]
        if k == 255:
            return
        n = nxt
        yield vals[k]


def stream(v):
    """Yield v as HTML, one piece at a time, on one flat stack instead of nested generators.

    A tuple is a block of pages.html, (_B_NAME,) or (_B_NAME, (slot values...)); bytes are
    markup (the templates', or a constant of the code); str and int are text, escaped; None
    and False print nothing; any other iterable (list, generator) is printed item by item."""
    mv = memoryview(bytearray(_CHUNK + 3))  # every block's pieces, one after the other
    st = [iter((v,))]
    while st:
        try:
            v = next(st[-1])
        except StopIteration:
            st.pop()
            continue
        if isinstance(v, (bytes, memoryview)):
            yield v
        elif isinstance(v, str):
            yield esc(v)
        elif v is None or v is False:
            pass
        elif isinstance(v, int):
            yield str(v)
        elif isinstance(v, tuple):
            st.append(_block(mv, *v))
        else:
            st.append(iter(v))


def page(ctx, title, body, script=None):
    """The page around body (see stream); script: a script block's number."""
    return stream([(_B_HEAD, (title, ctx.device_id, ctx.cfg["name"] or ctx.device_id)), body,
                   (_B_TAIL, (script and (script,),))])


def html(body, status=200):
    return Response(body, status, {"Content-Type": "text/html; charset=utf-8"})


def stylesheet():
    # Gzipped at build time (the ESP32 port's deflate cannot compress); 651 bytes.
    return Response(_read(0, -1, name="style.css.gz"), headers={
        "Content-Type": "text/css", "Content-Encoding": "gzip",
        "Cache-Control": "max-age=86400"})


def status_page(ctx):
    s = ctx.snapshot()
    w, m, o = s["wifi"], s["mqtt"], s["ota"]
    return page(ctx, "Status", (_B_STATUS, (
        s["name"], s["device_id"], s["version"], s["previous_version"] or "none",
        s["uptime_s"], s["mem"]["free"],
        o["state"] + (" – " + o["last_error"] if o["last_error"] else ""),
        s["mode"], w["ssid"] or "not connected", w["ip"] or "–",
        "%s dBm" % w["rssi"] if w["rssi"] else "–",
        m["state"], m["broker"] or "not set", m["sent"], m["queued"], m["dropped"],
        m["last_error"] or "none")), _B_STATUS_JS)


def logs_page(ctx):
    from perch import log

    # Line by line, read from the ring as the page goes out: the whole ring as one string,
    # or as a list of lines, would need several KB. The newline before the first line is one
    # that HTML drops right after <pre>. Lines after seq are the script's to fetch.
    seq = log.last_seq()
    lines = (x for n, line in log.each(0) if n <= seq for x in ("\n", line))
    return page(ctx, "Logs", (_B_LOGS, (seq, lines)), _B_LOGS_JS)
