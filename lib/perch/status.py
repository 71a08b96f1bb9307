# The /api/status document, the delayed reboot of perch.app's Context, and the rarer core
# API (/api/logs, /api/config, /api/reboot): loaded per use and dropped after
# (config.lazy), so that their code does not stay in RAM.

import asyncio

from perch import hw, log, web
from perch.config import ConfigError


def reboot(ctx, delay_ms):
    # Delay so the HTTP or MQTT answer that asked for the reboot gets out first.
    async def later():
        await asyncio.sleep_ms(delay_ms)
        log.Logger("app").info("rebooting")
        hw.reset()

    asyncio.create_task(later())


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


def api(ctx, request, name, m):
    """GET /api/logs, GET and PATCH /api/config, POST /api/reboot (perch.web's core route)."""
    if name == "reboot":
        reboot(ctx, 300)
        return {"rebooting": True}, 202
    if name == "logs":
        try:
            since = int(request.args.get("since", "0"))
        except ValueError:
            return web.json_error(400, "since: must be an integer")
        return {"lines": [{"seq": n, "line": s} for n, s in log.since(since)],
                "last": log.last_seq()}
    if m == "PATCH":
        try:
            ctx.cfg.update(web.body_json(request))
        except ConfigError as e:
            return web.json_error(400, str(e), field=e.field)
        except ValueError as e:
            return web.json_error(400, str(e))
        log.set_level(ctx.cfg["log.level"])
        log.Logger("web").info("config changed")
    return ctx.cfg.public()
