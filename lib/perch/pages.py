# HTML: the page shell, the one stylesheet, and the status and logs pages.
#
# Pages are plain HTML forms that work without JavaScript in a phone's captive mini-browser;
# scripts only refresh what is already shown. Nothing is loaded from outside the device.

from microdot import Response


def stylesheet():
    # Gzipped at build time: the ESP32 port's deflate cannot compress.
    from perch.assets import CSS_GZ  # type: ignore[import-not-found]  # made by the build

    return Response(CSS_GZ, headers={
        "Content-Type": "text/css", "Content-Encoding": "gzip",
        "Cache-Control": "max-age=86400"})


def esc(s):
    if s is None:
        return ""
    s = str(s)
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#39;")):
        if a in s:
            s = s.replace(a, b)
    return s


NAV = (("/", "Status"), ("/wifi", "Wi-Fi"), ("/settings", "Settings"),
       ("/firmware", "Firmware"), ("/logs", "Logs"))


def shell(ctx, title, body, script=""):
    nav = "".join('<a href="%s">%s</a>' % link for link in NAV)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<title>%s · %s</title><link rel="stylesheet" href="/style.css"></head><body>'
        "<header><b>%s</b><nav>%s</nav></header><main>%s</main>%s</body></html>"
        % (esc(title), esc(ctx.device_id), esc(ctx.cfg["name"] or ctx.device_id), nav, body,
           "<script>%s</script>" % script if script else "")
    )


def stream(ctx, title, parts, script=""):
    """The page shell, streamed: head, each part, tail. A fragmented heap may hold no
    block as large as a whole page, so no page-sized string is ever built."""
    head, _, tail = shell(ctx, title, "\x00", script).partition("\x00")
    yield head
    for p in parts:
        yield p
    yield tail


def html(text, status=200):
    return Response(text, status, {"Content-Type": "text/html; charset=utf-8"})


def rows(pairs):
    return "<table>%s</table>" % "".join(
        '<tr><td>%s</td><td id="%s">%s</td></tr>' % (esc(k), esc(i), esc(v)) for k, i, v in pairs)


def status_page(ctx):
    s = ctx.snapshot()
    w, m, o = s["wifi"], s["mqtt"], s["ota"]
    update = o["state"] + (" – " + o["last_error"] if o["last_error"] else "")
    device = rows((
        ("Name", "name", s["name"]), ("Device id", "device_id", s["device_id"]),
        ("Version", "version", s["version"]),
        ("Previous version", "previous_version", s["previous_version"] or "none"),
        ("Uptime", "uptime_s", "%d s" % s["uptime_s"]),
        ("Free memory", "mem", "%d bytes" % s["mem"]["free"]), ("Update", "ota", update)))
    net = rows((
        ("Mode", "mode", s["mode"]), ("Wi-Fi", "ssid", w["ssid"] or "not connected"),
        ("Address", "ip", w["ip"] or "–"),
        ("Signal", "rssi", "%s dBm" % w["rssi"] if w["rssi"] else "–")))
    mqtt = rows((
        ("MQTT", "mqtt", m["state"]), ("Broker", "broker", m["broker"] or "not set"),
        ("Sent", "sent", m["sent"]), ("Queued", "queued", m["queued"]),
        ("Dropped", "dropped", m["dropped"]),
        ("Last error", "last_error", m["last_error"] or "none")))
    return stream(ctx, "Status", ("<section><h2>Device</h2>", device,
                                  "</section><section><h2>Network</h2>", net,
                                  "</section><section><h2>Telemetry</h2>", mqtt, "</section>"),
                  _STATUS_JS)


# Refresh the figures already on the page every 5 s.
_STATUS_JS = """setInterval(async()=>{try{const s=await(await fetch('/api/status')).json();
const t={uptime_s:s.uptime_s+' s',mode:s.mode,ssid:s.wifi.ssid||'not connected',
ip:s.wifi.ip||'–',mqtt:s.mqtt.state,sent:s.mqtt.sent,queued:s.mqtt.queued,
dropped:s.mqtt.dropped,last_error:s.mqtt.last_error||'none',mem:s.mem.free+' bytes'};
for(const k in t){const e=document.getElementById(k);if(e)e.textContent=t[k]}}catch(e){}},5000)"""


def logs_page(ctx):
    from perch import log

    # one line at a time: the whole ring as one string would need a block of several KB
    lines = ['<section><h2>Log</h2><pre id="log" data-seq="%d">' % log.last_seq()]
    first = True
    for _, line in log.since(0):
        lines.append(esc(line) if first else "\n" + esc(line))
        first = False
    lines.append("</pre></section>")
    return stream(ctx, "Logs", lines, _LOGS_JS)


# Append new lines as they come, from /api/logs?since=<last seen>.
_LOGS_JS = """const p=document.getElementById('log');let seq=+p.dataset.seq;
setInterval(async()=>{try{const r=await(await fetch('/api/logs?since='+seq)).json();
for(const l of r.lines){p.textContent+='\\n'+l.line;seq=l.seq}
if(r.lines.length)p.scrollTop=p.scrollHeight}catch(e){}},2000)"""
