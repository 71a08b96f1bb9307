# The rarer core API (/api/logs, /api/config, /api/reboot) and the delayed reboot of
# perch.app's Context: loaded per use and dropped after (config.lazy), so that their code
# does not stay in RAM, nor load with every /api/status (perch.status).

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
        return {"lines": [{"seq": n, "line": s} for n, s in log.each(since)],
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
