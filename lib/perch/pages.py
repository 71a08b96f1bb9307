# HTML: the page shell, the one stylesheet, and the status and logs pages.
#
# Pages are plain HTML forms that work without JavaScript in a phone's captive mini-browser;
# scripts only refresh what is already shown. Nothing is loaded from outside the device.

import io

import deflate
from microdot import Response

_CSS = b"""*{box-sizing:border-box}body{font:16px/1.4 system-ui,sans-serif;margin:0;\
background:#f4f5f7;color:#1d2330}header{background:#16324f;color:#fff;padding:.7em 1em}\
header b{font-size:1.15em}nav a{color:#cfe0f5;margin-right:.9em;text-decoration:none}\
main{max-width:34em;margin:0 auto;padding:1em}section{background:#fff;border-radius:8px;\
padding:1em;margin:0 0 1em;box-shadow:0 1px 2px #0002}h2{font-size:1.1em;margin:0 0 .6em}\
table{width:100%;border-collapse:collapse}td{padding:.25em 0;vertical-align:top}\
td:first-child{color:#5b6575;width:40%}input,select,button{font:inherit;width:100%;\
padding:.6em;margin:.2em 0 .7em;border:1px solid #b9c0cc;border-radius:6px}\
button,.btn{background:#1f6feb;color:#fff;border:0;cursor:pointer;display:inline-block;\
text-align:center;padding:.6em 1em;border-radius:6px;text-decoration:none}\
button.warn{background:#c9372c}.ok{color:#187a3a}.err{color:#c9372c}.muted{color:#5b6575}\
pre{white-space:pre-wrap;word-break:break-all;font-size:.8em;background:#10151d;color:#d6dde8;\
padding:.8em;border-radius:6px;max-height:70vh;overflow:auto}ul.nets{list-style:none;padding:0}\
ul.nets li{border-bottom:1px solid #e3e6eb}ul.nets label{display:flex;gap:.6em;padding:.6em 0;\
align-items:center}ul.nets input{width:auto;margin:0}.grow{flex:1}"""

_css_gz = None


def stylesheet():
    # Gzip once on first use; a captive mini-browser fetches it on every page otherwise.
    global _css_gz
    if _css_gz is None:
        buf = io.BytesIO()
        with deflate.DeflateIO(buf, deflate.GZIP) as z:
            z.write(_CSS)
        _css_gz = buf.getvalue()
    return Response(_css_gz, headers={
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
    body = ("<section><h2>Device</h2>%s</section><section><h2>Network</h2>%s</section>"
            "<section><h2>Telemetry</h2>%s</section>" % (device, net, mqtt))
    return shell(ctx, "Status", body, _STATUS_JS)


# Refresh the figures already on the page every 5 s.
_STATUS_JS = """setInterval(async()=>{try{const s=await(await fetch('/api/status')).json();
const t={uptime_s:s.uptime_s+' s',mode:s.mode,ssid:s.wifi.ssid||'not connected',
ip:s.wifi.ip||'–',mqtt:s.mqtt.state,sent:s.mqtt.sent,queued:s.mqtt.queued,
dropped:s.mqtt.dropped,last_error:s.mqtt.last_error||'none',mem:s.mem.free+' bytes'};
for(const k in t){const e=document.getElementById(k);if(e)e.textContent=t[k]}}catch(e){}},5000)"""


def logs_page(ctx):
    from perch import log

    text = "\n".join(line for _, line in log.since(0))
    body = '<section><h2>Log</h2><pre id="log" data-seq="%d">%s</pre></section>' % (
        log.last_seq(), esc(text))
    return shell(ctx, "Logs", body, _LOGS_JS)


# Append new lines as they come, from /api/logs?since=<last seen>.
_LOGS_JS = """const p=document.getElementById('log');let seq=+p.dataset.seq;
setInterval(async()=>{try{const r=await(await fetch('/api/logs?since='+seq)).json();
for(const l of r.lines){p.textContent+='\\n'+l.line;seq=l.seq}
if(r.lines.length)p.scrollTop=p.scrollHeight}catch(e){}},2000)"""
