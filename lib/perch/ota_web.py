# OTA routes: the JSON API (/api/ota...) and the /firmware page and its forms. The page's
# HTML lives in ota_page, loaded when the page is asked for.
import gc
import sys

from microdot import Response

from perch import slots
from perch.ota import work
from perch.pages import html
from perch.web import body_json, json_error


def _page():
    # Collect first: the page code then loads into one compact run of the heap.
    gc.collect()
    from perch import ota_page

    return ota_page


_LAZY = ("ota_page", "ota_install", "bundle", "httpc", "fwimage")


def _drop(o):
    """Forget the page and install modules while no install runs, so that their code does not
    stay in RAM for the board's lifetime after one look at the firmware page. Live objects
    (a generator still streaming the page) keep what they use until they finish."""
    t = o.task
    if o.busy() or (t is not None and not t.done()):
        return
    import perch

    for m in _LAZY:
        if sys.modules.pop("perch." + m, None) is not None and hasattr(perch, m):
            delattr(perch, m)


def _bundle():
    from perch import bundle

    return bundle


def routes(ctx, o):
    app = ctx.web

    @app.get("/api/ota")
    async def get_ota(request):
        try:
            return await work().describe(o)
        finally:
            _drop(o)

    @app.post("/api/ota/install")
    async def install(request):
        bundle = _bundle()
        from perch import httpc

        try:
            doc = body_json(request)
            v, url = doc.get("version"), doc.get("url")
            if isinstance(v, str):
                bundle.parse_version(v)
                await work().install_version(o, v)
            elif isinstance(url, str):
                work().install_from_url(o, url)
            else:
                return json_error(400, 'body needs "version" or "url"')
        except LookupError as e:
            return json_error(404, str(e))
        except (ValueError, bundle.BundleError, httpc.HTTPError) as e:
            return json_error(409 if o.busy() else 400, str(e))
        return {"state": o.state, "target": o.target}, 202

    @app.post("/api/ota/upload")
    async def upload(request):
        try:
            buf = o.take_buffer()
            man = await work().upload(o, request, buf)
        except MemoryError:
            o.fail("not enough memory to install")
            return json_error(503, o.last_error)
        except ValueError as e:
            return json_error(409 if o.busy() else 400, str(e))
        if man is None:
            return json_error(400, o.last_error, state=o.state)
        return {"version": man["version"], "state": o.state, "rebooting": True}

    @app.post("/api/ota/rollback")
    async def rollback(request):
        try:
            st = o.rollback("manual rollback from %s" % ctx.version)
        except (OSError, ValueError) as e:
            return json_error(409, str(e))
        return {"state": o.state, "to": slots.slot_version(st["active"])}, 202

    @app.get("/firmware")
    async def page(request):
        try:
            return html(await _page().firmware_page(ctx, o))
        finally:
            _drop(o)

    @app.post("/firmware/install")
    async def form_install(request):
        bundle = _bundle()
        v = (request.form or {}).get("version") or ""
        try:
            bundle.parse_version(v)
            if bundle.version_lt(v, ctx.version) and not (request.form or {}).get("confirm"):
                return html(_page().confirm_page(ctx, v))
            await work().install_version(o, v)
        except (LookupError, ValueError, bundle.BundleError) as e:
            return html(await _page().firmware_page(ctx, o, str(e)), 400)
        return redirect()

    @app.post("/firmware/rollback")
    async def form_rollback(request):
        try:
            o.rollback("manual rollback from %s" % ctx.version)
        except (OSError, ValueError) as e:
            return html(await _page().firmware_page(ctx, o, str(e)), 409)
        return redirect()


def redirect():
    return Response("", 303, {"Location": "/firmware"})
