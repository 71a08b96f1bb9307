# OTA routes: the JSON API (/api/ota...) and the /firmware page.
#
# The page is plain forms (install, downgrade with a confirmation step, rollback); a small
# script adds the live progress bar, confirm() dialogs and the file upload, which has to
# stream the raw bundle as application/octet-stream.
from microdot import Response

from perch import bundle, httpc, slots
from perch.pages import esc, html, shell
from perch.web import body_json, json_error


def routes(ctx, o):
    app = ctx.web

    @app.get("/api/ota")
    async def get_ota(request):
        return await o.describe()

    @app.get("/api/ota/ping")
    async def ping(request):
        return Response(b"pong", headers={"Content-Type": "text/plain"})

    @app.post("/api/ota/install")
    async def install(request):
        try:
            doc = body_json(request)
            v, url = doc.get("version"), doc.get("url")
            if isinstance(v, str):
                bundle.parse_version(v)
                await o.install_version(v)
            elif isinstance(url, str):
                o.install_from_url(url)
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
            man = await o.upload(request)
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
        return html(await firmware_page(ctx, o))

    @app.post("/firmware/install")
    async def form_install(request):
        v = (request.form or {}).get("version") or ""
        try:
            bundle.parse_version(v)
            if bundle.version_lt(v, ctx.version) and not (request.form or {}).get("confirm"):
                return html(confirm_page(ctx, v))
            await o.install_version(v)
        except (LookupError, ValueError, bundle.BundleError) as e:
            return html(await firmware_page(ctx, o, str(e)), 400)
        return redirect()

    @app.post("/firmware/rollback")
    async def form_rollback(request):
        try:
            o.rollback("manual rollback from %s" % ctx.version)
        except (OSError, ValueError) as e:
            return html(await firmware_page(ctx, o, str(e)), 409)
        return redirect()


def redirect():
    return Response("", 303, {"Location": "/firmware"})


def confirm_page(ctx, v):
    body = ('<section><h2>Downgrade?</h2><p>Install <b>%s</b>, older than the running %s? '
            'Settings are kept.</p><form method="post" action="/firmware/install">'
            '<input type="hidden" name="version" value="%s">'
            '<input type="hidden" name="confirm" value="1">'
            '<button class="warn">Downgrade to %s</button></form>'
            '<a class="btn" href="/firmware">Cancel</a></section>'
            % (esc(v), esc(ctx.version), esc(v), esc(v)))
    return shell(ctx, "Firmware", body)


async def firmware_page(ctx, o, error=None):
    d = await o.describe()
    trial = "on trial" if d["trial"] and not d["confirmed"] else "confirmed"
    info = ('<table><tr><td>Running</td><td id="cur" data-v="%s">%s (%s)</td></tr>'
            '<tr><td>Previous</td><td id="prev">%s</td></tr>'
            '<tr><td>Floor</td><td>%s</td></tr>'
            % (esc(d["current"]), esc(d["current"]), trial, esc(d["previous"] or "none"),
               esc(d["min_version"])))
    if d["rollback_reason"]:
        info += '<tr><td>Rolled back</td><td id="reason" class="err">%s</td></tr>' % esc(
            d["rollback_reason"])
    info += "</table>"
    err = error or d["last_error"]
    prog = ('<p>State: <b id="st">%s</b></p><progress id="prog" max="100" value="%d" '
            'style="width:100%%"></progress><p id="err" class="err">%s</p>'
            % (esc(d["state"]), d["progress"], esc(err)))
    rows = []
    for r in d["available"]:
        v = esc(r["version"])
        if r["current"]:
            act = '<span class="ok">running</span>'
        elif not r["allowed"]:
            act = '<span class="muted">below floor</span>'
        else:
            label = "Downgrade" if r["downgrade"] else "Install"
            act = ('<form method="post" action="/firmware/install" class="inst">'
                   '<input type="hidden" name="version" value="%s">'
                   '<button%s data-v="%s">%s</button></form>'
                   % (v, ' class="warn" data-down="1"' if r["downgrade"] else "", v, label))
        rows.append('<tr id="v-%s"><td><b>%s</b><br><span class="muted">%s</span><br>%s</td>'
                    '<td>%s</td></tr>' % (v, v, esc(r["date"] or ""), esc(r["notes"] or ""),
                                          act))
    if rows:
        versions = '<table id="versions">%s</table>' % "".join(rows)
    else:
        versions = '<p class="muted">%s</p>' % esc(d["index_error"] or "no releases")
    upload = ('<input type="file" id="file" accept=".bundle">'
              '<button id="up" type="button">Upload and install</button>'
              '<noscript><p class="muted">Uploading needs JavaScript.</p></noscript>')
    back = ""
    if d["previous"]:
        back = ('<form method="post" action="/firmware/rollback" id="rb">'
                '<button class="warn" id="rbb">Roll back to %s</button></form>'
                % esc(d["previous"]))
    body = ('<section><h2>Firmware</h2>%s</section><section><h2>Update</h2>%s</section>'
            '<section><h2>Versions</h2>%s</section><section><h2>Upload a bundle</h2>%s'
            '</section><section><h2>Rollback</h2>%s</section>'
            % (info, prog, versions, upload, back or '<p class="muted">no previous version'
               "</p>"))
    return shell(ctx, "Firmware", body, _JS)


# Live progress: poll /api/ota; after "rebooting" (or when the board stops answering mid-way),
# wait for it to come back and reload, which shows the version it now runs.
_JS = """const $=i=>document.getElementById(i);let v0=$('cur').dataset.v,busy=0,tm,t0=0;
function later(ms){clearTimeout(tm);tm=setTimeout(poll,ms)}
async function poll(){try{const d=await(await fetch('/api/ota')).json();
if(d.current!=v0){location.reload();return}$('st').textContent=d.state;
$('prog').value=d.progress;$('err').textContent=d.last_error||'';
if(d.state=='rebooting'){$('st').textContent='rebooting…';setTimeout(back,1000);return}
busy=d.state=='downloading'||d.state=='installing'}catch(e){if(busy){back();return}}
later(busy?250:2000)}
async function back(){t0=t0||Date.now();try{const s=await(await fetch('/api/status')).json();
if(s.version!=v0||Date.now()-t0>20000){location.reload();return}}catch(e){}setTimeout(back,500)}
async function post(u,o){busy=1;later(150);const r=await fetch(u,o);
const d=await r.json().catch(()=>({}));if(!r.ok){busy=0;$('st').textContent='error';
$('err').textContent=d.error||r.status}else later(0)}
document.querySelectorAll('form.inst').forEach(f=>f.onsubmit=e=>{e.preventDefault();
const b=f.querySelector('button');if(b.dataset.down&&!confirm('Downgrade to '+b.dataset.v+
'?'))return;$('st').textContent='starting';post('/api/ota/install',{method:'POST',
headers:{'Content-Type':'application/json'},body:JSON.stringify({version:b.dataset.v})})});
const rb=$('rb');if(rb)rb.onsubmit=e=>{e.preventDefault();if(confirm($('rbb').textContent+'?'))
post('/api/ota/rollback',{method:'POST'})};
$('up').onclick=()=>{const f=$('file').files[0];if(!f){$('err').textContent='choose a file';
return}$('st').textContent='uploading';post('/api/ota/upload',{method:'POST',body:f,
headers:{'Content-Type':'application/octet-stream'}})};poll()"""
