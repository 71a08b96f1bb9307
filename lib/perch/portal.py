# Captive portal: the redirect that makes phones pop up the sign-in sheet, the
# setup wizard on "/", the Wi-Fi and settings pages, and the Wi-Fi JSON API.
import gc
import json

from perch import auth, config, log, wifi
from perch.web import json_error

_log = log.Logger("portal")

AP_NET = "192.168.4."


def peer_ip(peer):
    """Client address from a stream's peername: a tuple on the ESP32, a raw
    sockaddr (family, port, IPv4) on the Unix port."""
    if isinstance(peer, tuple):
        return peer[0]
    if isinstance(peer, (bytes, bytearray)) and len(peer) >= 8:
        return "%d.%d.%d.%d" % (peer[4], peer[5], peer[6], peer[7])
    return ""


def device_address(ctx, w, peer):
    """The address this client reaches us on: loopback for local clients, the
    AP address on the setup network, else the station address."""
    ip = peer_ip(peer)
    if ip.startswith("127."):
        host = "127.0.0.1"
    elif ip.startswith(AP_NET) or not w.link:
        host = wifi.AP_IP
    else:
        host = w.station_ip() or wifi.AP_IP
    port = ctx.cfg["http.port"]
    return host if port == 80 else "%s:%d" % (host, port)


def captive(ctx, w):
    def redirect(host, peer):
        # Only while the setup AP is up; a joined device serves every Host normally.
        if not w.ap_on or auth.own_host(ctx, host):
            return None
        return "http://%s/" % device_address(ctx, w, peer)

    return redirect


def _text(v, field, lo, hi):
    if not isinstance(v, str):
        raise config.ConfigError(field, "must be a string")
    n = len(v.encode())
    if n < lo or n > hi:
        raise config.ConfigError(field, "length must be %d to %d bytes" % (lo, hi))
    return v


def network_entry(doc, w, need_password=True):
    """Validated {ssid, password, hidden, priority} from a request document."""
    ssid = _text(doc.get("ssid"), "ssid", 1, 32)
    pw = doc.get("password")
    if pw is None and need_password:
        pw = ""
    if pw is not None:
        _text(pw, "password", 0, 64)
        if pw and len(pw.encode()) < 8:
            raise config.ConfigError("password", "WPA2 passwords are 8 to 64 characters")
    hidden = doc.get("hidden", False)
    if not isinstance(hidden, bool):
        raise config.ConfigError("hidden", "must be true or false")
    prio = doc.get("priority", 0)
    if not isinstance(prio, int) or isinstance(prio, bool) or not -100 <= prio <= 100:
        raise config.ConfigError("priority", "must be an integer from -100 to 100")
    known = [n["ssid"] for n in w.saved()]
    if ssid not in known and len(known) >= config.SCHEMA["wifi.networks"][3]:
        raise config.ConfigError("ssid", "%d networks saved already: forget one first"
                                 % len(known))
    return {"ssid": ssid, "password": pw, "hidden": hidden, "priority": prio}


def set_meta(w, entry):
    """Change priority/hidden of a saved network without testing it again."""
    nets = []
    for n in w.saved():
        if n["ssid"] == entry["ssid"]:
            n = dict(n)
            n["priority"] = entry["priority"]
            n["hidden"] = entry["hidden"]
        nets.append(n)
    nets.sort(key=lambda n: -n["priority"])
    w.ctx.cfg.update({"wifi.networks": nets})


def saved_public(w):
    return [{"ssid": n["ssid"], "hidden": n["hidden"], "priority": n["priority"]}
            for n in w.saved()]


async def view(name, *args):
    # The page code is loaded for this request only: collect first, so that it lands in
    # one compact run of the heap instead of failing on a fragmented one.
    gc.collect()
    return await auth.view(name, *args)


def setup(ctx):
    w = wifi.get()
    app = ctx.web
    guard = getattr(ctx, "guard", None)
    if guard is not None:
        guard.redirect = captive(ctx, w)

    @app.before_request
    async def wizard(req):
        # "/" is the setup wizard until a network is saved, the status page after.
        if req.path == "/" and req.method in ("GET", "HEAD") and not w.saved():
            return await view("wizard", ctx, req)
        return None

    # One route per page family (each route costs RAM); setup_views names the handlers
    # <page>_<action>_<method>, e.g. wifi_result_get, settings_admin_post.
    @app.route("/wifi", methods=["GET", "POST"])
    async def wifi_page(req):
        return await view("dispatch", ctx, req, "wifi", "")

    @app.route("/wifi/<action>", methods=["GET", "POST"])
    async def wifi_action(req, action):
        return await view("dispatch", ctx, req, "wifi", action)

    @app.route("/settings", methods=["GET", "POST"])
    async def settings_page(req):
        return await view("dispatch", ctx, req, "settings", "")

    @app.route("/settings/<action>", methods=["GET", "POST"])
    async def settings_action(req, action):
        return await view("dispatch", ctx, req, "settings", action)

    # --- JSON API ---------------------------------------------------------------

    @app.get("/api/wifi/networks")
    async def api_networks(req):
        return w.scan_doc()

    @app.post("/api/wifi/scan")
    async def api_scan(req):
        w.request_scan()
        return {"scanning": True}, 202

    @app.get("/api/wifi")
    async def api_wifi(req):
        return {"networks": saved_public(w), "attempt": w.attempt, "mode": w.mode()}

    @app.post("/api/wifi")
    async def api_wifi_add(req):
        try:
            doc = json.loads(req.body or b"{}")
            if not isinstance(doc, dict):
                raise ValueError("body must be a JSON object")
            known = any(n["ssid"] == doc.get("ssid") for n in w.saved())
            if known and "password" not in doc:
                set_meta(w, network_entry(doc, w, need_password=False))
                return {"networks": saved_public(w), "attempt": w.attempt}
            n = network_entry(doc, w)
        except config.ConfigError as e:
            return json_error(400, str(e), field=e.field)
        except ValueError as e:
            return json_error(400, "body is not a JSON object: %s" % e)
        w.request_join(n["ssid"], n["password"], n["hidden"], n["priority"])
        return {"networks": saved_public(w), "attempt": w.attempt}, 202

    @app.delete("/api/wifi/<path:ssid>")
    async def api_wifi_delete(req, ssid):
        try:
            from microdot.microdot import urldecode

            ssid = urldecode(ssid)
        except (ValueError, UnicodeError):
            return json_error(400, "ssid: bad %-escape in the URL")
        if not w.forget(ssid):
            return json_error(404, "ssid: no saved network named %s" % ssid)
        return {"networks": saved_public(w)}

    @app.post("/api/factory-reset")
    async def api_factory_reset(req):
        factory_reset(ctx)
        return {"reset": True, "rebooting": True}, 202


def factory_reset(ctx):
    _log.warning("factory reset")
    ctx.cfg.reset()
    ctx.reboot(500)
