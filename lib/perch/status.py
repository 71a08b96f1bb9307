# The /api/status document, loaded per request and dropped after (config.lazy), so that
# its code does not stay in RAM; it is the most frequent request, so it holds nothing else
# (the rarer core API is perch.coreapi).

from perch import log


def snapshot(ctx):
    doc = {
        "device_id": ctx.device_id,
        "name": ctx.cfg["name"] or ctx.device_id,
        "version": ctx.version,
        "previous_version": ctx.previous_version,
        "uptime_s": ctx.uptime_s(),
        "mode": "sta",
        "mem": ctx.mem,
        "loop": {"max_stall_ms": ctx.stall_max_ms},
    }
    for name, fn in ctx.status.items():
        try:
            doc[name] = fn()
        except Exception as e:
            log.Logger("app").exc(e, "status provider failed", provider=name)
    # What a feature that is not running reports.
    if "wifi" not in doc:
        doc["wifi"] = {"ssid": None, "rssi": None, "ip": None}
    if "mqtt" not in doc:
        doc["mqtt"] = {"state": "disabled", "broker": None, "queued": 0, "sent": 0,
                       "dropped": 0, "last_error": None}
    if "ota" not in doc:
        doc["ota"] = {"state": "idle", "progress": 0, "last_error": None}
    return doc
