# HTML of the setup pages: the first-run wizard, Wi-Fi, the join result and
# settings. Plain forms that work without JavaScript in a captive mini-browser;
# the small scripts only add the show-password toggle and a live scan list.
from perch.pages import esc
from perch.pages import stream as page

_BARS = ("\u2582", "\u2584", "\u2586", "\u2588")
_DIM = '<span style="opacity:.25">%s</span>'
_CHECK = 'style="display:flex;gap:.5em;align-items:center"'
# Inline SVG: emoji fonts are missing on some phones, and nothing may load from outside.
_LOCK = ('<svg width="14" height="16" viewBox="0 0 14 16" role="img" aria-label="%s">'
         '<title>%s</title><path d="M3 7V5a4 4 0 0 1 8 0v2" fill="none" stroke="#5b6575" '
         'stroke-width="2"/><rect x="1" y="7" width="12" height="9" rx="2" fill="#5b6575"/>'
         "</svg>")


def bars(rssi):
    n = 4 if rssi >= -55 else 3 if rssi >= -67 else 2 if rssi >= -75 else 1
    on = "".join(_BARS[:n])
    off = "".join(_BARS[n:])
    return '<span class="bars" title="%d dBm" aria-label="signal %d of 4">%s%s</span>' % (
        rssi, n, on, _DIM % off if off else "")


def _net_row(n, chosen):
    sec = esc(n["security"])
    lock = '<span style="width:14px"></span>' if sec == "open" else _LOCK % (sec, sec)
    return (
        '<li><label><input type="radio" name="ssid" value="%s"%s>'
        '<span class="grow">%s</span>%s%s</label></li>'
        % (esc(n["ssid"]), " checked" if n["ssid"] == chosen else "", esc(n["ssid"]),
           bars(n["rssi"]), lock))


def chooser(scan, chosen="", note=""):
    """The network picker form, posting to /wifi."""
    nets = scan["networks"]
    if scan["age_s"] is None:
        state = "Scanning for networks…" if scan["scanning"] else "No scan yet."
    else:
        state = "%d network%s found %d s ago." % (len(nets), "" if len(nets) == 1 else "s",
                                                 scan["age_s"])
        if scan["scanning"]:
            state += " Scanning again…"
    manual_checked = " checked" if chosen and chosen not in [n["ssid"] for n in nets] else ""
    out = [
        '<section><h2>Choose a network</h2>%s<form method="post" action="/wifi">'
        '<p class="muted" id="scanstate">%s%s</p>'
        '<button formaction="/wifi/scan" formnovalidate style="width:auto;'
        'background:#5b6575;padding:.35em .9em">Scan again</button>'
        '<ul class="nets" id="nets">'
        % (note, esc(state), '<i id="scanning" hidden></i>' if scan["scanning"] else "")]
    for n in nets:
        out.append(_net_row(n, chosen))
    out.append(
        '<li><label><input type="radio" name="ssid" value=""%s>'
        '<span class="grow">Other or hidden network</span></label>'
        '<input name="manual" id="manual" maxlength="32" placeholder="Network name (SSID)" '
        'style="width:100%%;margin:0 0 .6em" '
        'value="%s" autocapitalize="none" autocomplete="off"></li></ul>'
        '<label>Password<input type="password" name="password" id="pw" maxlength="64" '
        'autocomplete="off" autocapitalize="none"></label>'
        "<label %s><input type=\"checkbox\" id=\"show\" style=\"width:auto;margin:0\">"
        "Show password</label>"
        '<button id="connect">Connect</button></form></section>'
        % (manual_checked, esc(chosen) if manual_checked else "", _CHECK))
    return out


# Show-password toggle; while a scan runs, poll and reload the list when it lands.
CHOOSER_JS = """const pw=document.getElementById('pw'),sh=document.getElementById('show');
if(sh)sh.onchange=()=>{pw.type=sh.checked?'text':'password'};
const m=document.getElementById('manual');if(m)m.oninput=()=>{
const r=document.querySelector('input[name=ssid][value=""]');if(r)r.checked=true};
async function poll(){try{const r=await(await fetch('/api/wifi/networks')).json();
if(r.scanning)setTimeout(poll,700);else location.reload()}catch(e){}}
if(document.getElementById('scanning'))poll();"""


def saved_list(nets):
    if not nets:
        return ""
    rows = "".join(
        '<li><form method="post" action="/wifi/saved" style="display:flex;gap:.5em;'
        'align-items:center"><input type="hidden" name="ssid" value="%s">'
        '<span class="grow">%s%s</span>'
        '<input name="priority" type="number" min="-100" max="100" value="%d" '
        'style="width:5em" aria-label="priority">'
        '<button style="width:auto">Save</button>'
        '<button class="warn" style="width:auto" formaction="/wifi/forget">Forget</button>'
        "</form></li>"
        % (esc(n["ssid"]), esc(n["ssid"]), " (hidden)" if n.get("hidden") else "",
           n.get("priority", 0))
        for n in nets)
    return ('<section><h2>Saved networks</h2><p class="muted">Tried in priority order '
            '(highest first), then by signal.</p><ul class="nets">%s</ul></section>' % rows)


def link_line(st):
    if not st or not st["ssid"]:
        return '<p class="muted">Not connected to a network.</p>'
    return '<p class="ok">Connected to <b>%s</b>, address %s%s.</p>' % (
        esc(st["ssid"]), esc(st["ip"]), ", %d dBm" % st["rssi"] if st["rssi"] else "")


def wifi_page(ctx, scan, saved, note="", chosen="", st=None):
    parts = ['<section><h2>Wi-Fi</h2>%s</section>' % link_line(st)]
    parts += chooser(scan, chosen, note)
    parts.append(saved_list(saved))
    return page(ctx, "Wi-Fi", parts, CHOOSER_JS)


def wizard_page(ctx, scan):
    intro = (
        '<section><h2>Welcome</h2><p>Connect <b>%s</b> to your Wi-Fi network. The '
        "device tests the password first and keeps this setup network up until it "
        "works.</p></section>" % esc(ctx.device_id))
    return page(ctx, "Setup", [intro] + chooser(scan), CHOOSER_JS)


def error_note(msg):
    return '<p class="err" role="alert">%s</p>' % esc(msg)


def admin_form(title="Protect this device"):
    return (
        '<section><h2>%s</h2><form method="post" action="/settings/admin">'
        '<label>Admin password<input type="password" name="password" minlength="1" '
        'maxlength="128" autocomplete="new-password" required></label>'
        '<label>Repeat it<input type="password" name="password2" maxlength="128" '
        'autocomplete="new-password" required></label>'
        "<button>Set admin password</button></form></section>" % esc(title))


def result_page(ctx, attempt, ap_on, linger_s, admin_set, port=80):
    ssid = esc(attempt["ssid"])
    st = attempt["state"]
    if st == "connecting":
        body = ('<section><h2>Connecting…</h2><p>Testing the password for <b>%s</b>. '
                "This page refreshes by itself.</p></section>" % ssid)
        return page(ctx, "Connecting", [body])
    if st == "failed":
        return None
    suffix = "" if port == 80 else ":%d" % port
    ip = esc(attempt["ip"]) + suffix
    host = esc(ctx.device_id) + ".local" + suffix
    closing = ""
    if ap_on:
        closing = ("<p>The setup network <b>%s</b> closes in about %d s. Join <b>%s</b> "
                   "on this phone, then open one of the addresses above.</p>"
                   % (esc(ctx.device_id), linger_s, ssid))
    body = (
        '<section><h2 class="ok">Connected</h2><p>%s joined <b>%s</b>.</p>'
        '<table><tr><td>Address</td><td id="newip"><a href="http://%s/">http://%s/</a></td>'
        '</tr><tr><td>Name</td><td><a href="http://%s/">http://%s/</a></td></tr></table>%s'
        "</section>" % (esc(ctx.device_id), ssid, ip, ip, host, host, closing))
    return page(ctx, "Connected", [body, "" if admin_set else admin_form()])


def _field(label, name, value="", kind="text", extra=""):
    return '<label>%s<input type="%s" name="%s" value="%s" %s></label>' % (
        esc(label), kind, name, esc(value), extra)


def settings_page(ctx, mq, note=""):
    """mq: (url without credentials, user, password set?)."""
    cfg = ctx.cfg
    pw_hint = 'placeholder="%s"' % (
        "set – leave blank to keep" if mq[2] else "not set")
    ap_hint = 'placeholder="%s" minlength="8" maxlength="63"' % (
        "set – leave blank to keep" if cfg["ap.password"] else "open network")
    parts = [
        note + '<section><h2>Device and telemetry</h2><form method="post" action="/settings">',
        _field("Device name", "name", cfg["name"] or "", extra='maxlength="32"'),
        _field("MQTT broker URL", "mqtt_url", mq[0],
               extra='placeholder="mqtt://broker.local:1883" autocapitalize="none"'),
        _field("MQTT user", "mqtt_user", mq[1], extra='autocapitalize="none"'),
        _field("MQTT password", "mqtt_password", "", "password",
               pw_hint + ' autocomplete="new-password"'),
        '<label %s><input type="checkbox" name="mqtt_password_clear" value="1" '
        'style="width:auto;margin:0">Remove the MQTT password</label>' % _CHECK,
        _field("Sample interval (s)", "interval", cfg["telemetry.interval_s"], "number",
               'min="1" max="86400"'),
        _field("Update server URL", "ota_server", cfg["ota.server"] or "",
               extra='placeholder="http://updates.local/perch/"'),
        _field("Setup network password", "ap_password", "", "password",
               ap_hint + ' autocomplete="new-password"'),
        "<button>Save</button></form></section>",
        admin_form("Admin password"),
        '<section><h2>Factory reset</h2><form method="post" action="/settings/reset">'
        '<label %s><input type="checkbox" name="confirm" value="1" required '
        'style="width:auto;margin:0">Erase the settings and saved networks</label>'
        '<button class="warn">Factory reset</button></form></section>' % _CHECK,
    ]
    return page(ctx, "Settings", parts)


def login_page(ctx, msg, nxt):
    err = '<p class="err" role="alert">%s</p>' % esc(msg) if msg else ""
    body = (
        '<section><h2>Log in</h2>%s<form method="post" action="/login">'
        '<input type="hidden" name="next" value="%s">'
        '<label>Admin password<input type="password" name="password" '
        'autocomplete="current-password" autofocus required></label>'
        "<button>Log in</button></form></section>" % (err, esc(nxt)))
    return page(ctx, "Log in", [body])
