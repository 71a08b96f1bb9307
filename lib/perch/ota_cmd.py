# OTA's less used work, loaded per use and dropped after (ota.drop): the install and rollback
# requests of the API and the firmware page's forms, the MQTT commands, and the 404/405s of
# the OTA routes. GET /api/ota and the upload are in ota.py and ota_install.
from microdot import Response

from perch import bundle, slots
from perch.ota import BUSY, LOG, work
from perch.web import body_json, json_error


def _install(o, v, url):
    # from the update server's list or any URL: httpc, which loads ota_install for the rest
    return work("httpc").install(o, v, url)


async def handle(o, req, p):
    if req.method != "POST" or p in ("api/ota", "firmware"):
        return 405 if p in ("api/ota", "firmware", "api/ota/install", "api/ota/upload",
                            "api/ota/rollback", "firmware/install", "firmware/rollback") else 404
    if p == "api/ota/install":
        try:
            doc = body_json(req)
            await _install(o, doc.get("version"), doc.get("url"))
        except LookupError as e:
            return json_error(404, str(e))
        except Exception as e:
            return json_error(409 if o.state in BUSY else 400, str(e))
        return {"state": o.state, "target": o.target}, 202
    if p == "api/ota/rollback":
        try:
            st = rollback(o, "manual rollback from %s" % o.ctx.version)
        except (OSError, ValueError) as e:
            return json_error(409, str(e))
        return {"state": o.state, "to": slots.slot_version(st["active"])}, 202
    form = req.form or {}
    try:
        if p == "firmware/install":
            v = form.get("version") or ""
            if bundle.version_lt(v, o.ctx.version) and not form.get("confirm"):
                return work("ota_page").confirm_page(o.ctx, v)
            await _install(o, v, None)
        elif p == "firmware/rollback":
            rollback(o, "manual rollback from %s" % o.ctx.version)
        else:
            return 404
    except Exception as e:
        return await work("ota_page").firmware_page(o, str(e),
                                                    409 if p == "firmware/rollback" else 400)
    return Response("", 303, {"Location": "/firmware"})


async def command(o, doc):
    # MQTT: {"cmd": "ota", "version" or "url"} and {"cmd": "rollback"}
    if doc["cmd"] == "rollback":
        st = rollback(o, "rollback by MQTT command from %s" % o.ctx.version, False)
        # reboot once the command result has been published
        return {"to": slots.slot_version(st["active"])}, lambda: o.ctx.reboot(500)
    v = doc.get("version")
    url = doc.get("url")
    await _install(o, v, url)
    return {"state": o.state, "version": v} if isinstance(v, str) else {"state": o.state,
                                                                          "url": url}


def rollback(o, why, reboot=True):
    """Make the previous slot active again; it was confirmed before, so it is not on trial."""
    if o.state in BUSY:
        raise ValueError("an update is running (%s)" % o.state)
    st = slots.load()
    prev = st["previous"]
    if not prev or slots.slot_version(prev) is None:
        raise OSError("no previous version to roll back to")
    st["previous"] = st["active"]
    st["active"] = prev
    st["trial"] = False
    st["tries"] = 0
    st["crashes"] = 0
    st["reason"] = why
    slots.save(st)
    o.state = "rebooting"
    LOG.warning("rolling back", to=slots.slot_version(prev), reason=why)
    if reboot:
        o.ctx.reboot(500)
    return st
