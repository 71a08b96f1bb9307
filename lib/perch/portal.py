# Captive portal: the setup wizard on "/", the Wi-Fi and settings pages and the Wi-Fi JSON
# API. The captive DNS and the detection redirect are perch.dns, up with the AP only; the
# API calls that pages do not poll are perch.wifijoin, loaded when used.
import gc

from perch import auth, wifi
from perch.config import drop, lazy
from perch.web import json_error


async def _view(*args):
    # The page code is loaded for this request only: collect first, so that it lands in one
    # compact run of the heap instead of failing on a fragmented one.
    gc.collect()
    try:
        return await auth.view(*args)
    finally:
        drop("wifijoin")  # the Wi-Fi pages load it (the supervisor never does)


async def wizard(req):
    # "/" is the setup wizard until a network is saved, the status page after.
    if req.path == "/" and req.method in ("GET", "HEAD") and not wifi.saved():
        return await _view("wizard", wifi.ctx, req)
    return None


async def portal(req, path):
    api = path.startswith("api/")
    page, _, sub = path[4 if api else 0:].partition("/")
    if page != "wifi" and page != ("factory-reset" if api else "settings"):
        return json_error(404, "not found: " + req.path)
    m = req.method
    if not api:
        if m != "DELETE":
            return await _view("dispatch", wifi.ctx, req, page, sub)
        page = ""  # no such method: wifijoin.api says so
    elif page == "wifi" and sub == "networks" and (m == "GET" or m == "HEAD"):
        return wifi.scan_doc()  # polled by the page while a scan runs
    elif page == "wifi" and sub == "scan" and m == "POST":
        wifi.request_scan()
        return {"scanning": True}, 202
    # loaded for this request only
    return lazy("wifijoin").api(req, page, sub)


def setup(ctx):
    ctx.web.before_request(wizard)
    # One route for all of it: each microdot route costs about 600 bytes of RAM for good.
    # /wifi[/<action>] and /settings[/<action>] go to setup_views.dispatch, which names
    # the handlers <page>_<action>_<method>, e.g. wifi_result_get, settings_admin_post;
    # /api/wifi[/networks|/scan|/<ssid>] and /api/factory-reset are answered here.
    ctx.web.route("/<re:(api.)?(wifi|settings|factory-reset).*:path>",
                  methods=["GET", "POST", "DELETE"])(portal)
