# Captive portal: the setup wizard on "/", the Wi-Fi and settings pages and the Wi-Fi JSON
# API. The captive DNS and the detection redirect are perch.dns, up with the AP only.
import gc

from perch import auth, log, wifi
from perch.web import json_error


def saved_public(w):
    return [{"ssid": n["ssid"], "hidden": n["hidden"], "priority": n["priority"]}
            for n in w.saved()]


async def view(name, *args):
    # The page code is loaded for this request only: collect first, so that it lands in
    # one compact run of the heap instead of failing on a fragmented one.
    gc.collect()
    return await auth.view(name, *args)


def factory_reset(ctx):
    log.Logger("portal").warning("factory reset")
    ctx.cfg.reset()
    ctx.reboot(500)


def setup(ctx):
    w = wifi
    app = ctx.web

    @app.before_request
    async def wizard(req):
        # "/" is the setup wizard until a network is saved, the status page after.
        if req.path == "/" and req.method in ("GET", "HEAD") and not w.saved():
            return await view("wizard", ctx, req)
        return None

    # One route for all of it: each microdot route costs about 600 bytes of RAM for good.
    # /wifi[/<action>] and /settings[/<action>] go to setup_views.dispatch, which names
    # the handlers <page>_<action>_<method>, e.g. wifi_result_get, settings_admin_post;
    # /api/wifi[/networks|/scan|/<ssid>] and /api/factory-reset are answered here.
    @app.route("/<re:(api.)?(wifi|settings|factory-reset).*:path>",
               methods=["GET", "POST", "DELETE"])
    async def portal(req, path):
        api = path.startswith("api/")
        page, _, sub = path[4 if api else 0:].partition("/")
        if page != "wifi" and page != ("factory-reset" if api else "settings"):
            return json_error(404, "not found: " + req.path)
        m = req.method
        if m == "HEAD":
            m = "GET"
        if not api:
            if m != "DELETE":
                return await view("dispatch", ctx, req, page, sub)
        elif page != "wifi":
            if m == "POST" and not sub:
                factory_reset(ctx)
                return {"reset": True, "rebooting": True}, 202
        elif m == "GET" and not sub:
            return {"networks": saved_public(w), "attempt": w.attempt, "mode": w.mode()}
        elif m == "GET" and sub == "networks":
            return w.scan_doc()
        elif m == "POST" and sub == "scan":
            w.request_scan()
            return {"scanning": True}, 202
        elif (m == "POST" and not sub) or (m == "DELETE" and sub):
            # POST /api/wifi adds or edits a network, DELETE /api/wifi/<ssid> forgets one.
            from perch import wifijoin

            return wifijoin.api(req, sub)
        return json_error(405, "method not allowed: %s %s" % (m, req.path))
