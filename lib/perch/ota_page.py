# GET /api/ota's status document, and the /firmware page made from it: running and previous
# version, the server's version list with install and downgrade buttons (downgrade asks
# first), upload, rollback and a live progress bar. The markup and its script are in
# pages.html; plain forms work without JavaScript.
from micropython import const

from perch import hw
from perch.ota import work
from perch.pages import html, page

# Blocks of pages.html (the build checks these numbers)
_B_MUTED = const(4)
_B_FIRMWARE = const(29)
_B_ROLLED_BACK = const(30)
_B_VERSIONS = const(31)
_B_RELEASE = const(32)
_B_RUNNING = const(33)
_B_BELOW_FLOOR = const(34)
_B_INSTALL = const(35)
_B_DOWNGRADE = const(36)
_B_ROLL_BACK = const(37)
_B_CONFIRM = const(38)
_B_FIRMWARE_JS = const(39)


async def describe(o):
    """The status, plus the version list when ota.server is set, which loads httpc; without
    it nothing more loads."""
    ctx = o.ctx
    cfg = ctx.cfg
    if o.fw is False:
        try:
            run, nxt = hw.ota_partitions()
            o.fw = {"running": hw.partition_label(run), "next": hw.partition_label(nxt)}
        except (OSError, ValueError):
            o.fw = None
    doc = o.status()
    doc["firmware"] = o.fw
    doc["current"] = ctx.version
    doc["previous"] = ctx.previous_version
    doc["min_version"] = cfg["ota.min_version"]
    doc["server"] = cfg["ota.server"]
    doc["peak_alloc"] = o.peak_alloc
    if cfg["ota.server"]:
        doc["available"] = await work("httpc").available(o)
    else:
        o.index_error = "ota.server is not set"
        doc["available"] = []
    doc["index_error"] = o.index_error
    return doc


def confirm_page(ctx, v):
    return html(page(ctx, "Firmware", (_B_CONFIRM, (v, ctx.version))))


def _release(r):
    v = r["version"]
    act = ((_B_RUNNING,) if r["current"] else (_B_BELOW_FLOOR,) if not r["allowed"] else
           (_B_DOWNGRADE if r["downgrade"] else _B_INSTALL, (v,)))
    return (_B_RELEASE, (v, r.get("type") != "app" and " (firmware image)", r["date"],
                         r["notes"], act))


async def firmware_page(o, error=None, status=200):
    d = await describe(o)
    rels = d["available"]
    prev = d["previous"]
    return html(page(o.ctx, "Firmware", (_B_FIRMWARE, (
        d["current"], "on trial" if d["trial"] and not d["confirmed"] else "confirmed",
        prev or "none", d["min_version"],
        d["rollback_reason"] and (_B_ROLLED_BACK, (d["rollback_reason"],)),
        d["state"], d["progress"], error or d["last_error"],
        (_B_VERSIONS, ((_release(r) for r in rels),)) if rels else
        (_B_MUTED, (d["index_error"] or "no releases",)),
        (_B_ROLL_BACK, (prev,)) if prev else (_B_MUTED, ("no previous version",)))),
        _B_FIRMWARE_JS), status)
