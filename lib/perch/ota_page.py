# The /firmware page: running and previous version, the server's version list with install
# and downgrade buttons (downgrade asks first), upload, rollback and a live progress bar.
# Plain forms work without JavaScript; the script adds live progress, confirm() dialogs and
# the upload, which has to stream the raw bundle as application/octet-stream.
from perch import ota_install
from perch.pages import esc, shell, stream


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
    d = await ota_install.describe(o)
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
        kind = "" if r.get("type") == "app" else " (firmware image)"
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
        rows.append('<tr id="v-%s"><td><b>%s</b>%s<br><span class="muted">%s</span><br>%s</td>'
                    '<td>%s</td></tr>' % (v, v, kind, esc(r["date"] or ""),
                                          esc(r["notes"] or ""), act))
    if rows:
        rows.insert(0, '<table id="versions">')
        rows.append("</table>")
    else:
        rows.append('<p class="muted">%s</p>' % esc(d["index_error"] or "no releases"))
    upload = ('<input type="file" id="file" accept=".bundle">'
              '<button id="up" type="button">Upload and install</button>'
              '<noscript><p class="muted">Uploading needs JavaScript.</p></noscript>')
    back = ""
    if d["previous"]:
        back = ('<form method="post" action="/firmware/rollback" id="rb">'
                '<button class="warn" id="rbb">Roll back to %s</button></form>'
                % esc(d["previous"]))
    parts = ["<section><h2>Firmware</h2>", info, "</section><section><h2>Update</h2>", prog,
             "</section><section><h2>Versions</h2>"]
    parts += rows
    parts += ("</section><section><h2>Upload a bundle</h2>", upload,
              "</section><section><h2>Rollback</h2>",
              back or '<p class="muted">no previous version</p>', "</section>")
    return stream(ctx, "Firmware", parts, _JS)


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
