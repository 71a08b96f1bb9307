# MQTT commands (SPEC §5): one JSON object per message on devices/<id>/cmd, one result on
# devices/<id>/cmd/result. Telemetry loads this module while commands wait and drops it
# after: commands are rare.
#
# ctx.commands maps a "cmd" name to handler(doc), doc being the whole JSON object. A handler
# returns a dict merged into the result, or (dict, after) where after() runs once the
# result is published (reboot), or is a coroutine (OTA); ValueError or ConfigError become
# {"ok": false, "error": str(e)}. Other features register theirs in their setup(ctx), e.g.
# ctx.commands["rollback"] = handler.

import json

from perch import telemetry as t
from perch.config import ConfigError, check, drop


async def loop():
    """Run the commands waiting in telemetry.cmds, then end (and drop this module)."""
    cmds = t.cmds
    try:
        while cmds:
            try:
                await run(cmds[0])
            finally:
                cmds.pop(0)
    finally:
        cmds.clear()  # only after a failure (say a MemoryError): the next command starts afresh
        drop("command")
        t._hush()  # an OTA command asked for quiet: its result is out


async def run(raw):
    """Run one command and publish its result (QoS 1)."""
    res, after = await _run(raw)
    up = t.up
    try:
        await up.wait_connected()
        await up.publish("devices/%s/cmd/result" % t.ctx.device_id, json.dumps(res), False, 1)
    except Exception as e:
        t._log.warning("command result not sent", error=str(e))
    if after:
        after()


async def _run(raw):
    # (result dict, callable to run after the result is out, or None)
    try:
        doc = json.loads(raw)
    except ValueError as e:
        return {"cmd": None, "ok": False, "error": "malformed JSON: %s" % e}, None
    if not isinstance(doc, dict) or not isinstance(doc.get("cmd"), str):
        return {"cmd": None, "ok": False,
                "error": 'a command is a JSON object with a "cmd" string'}, None
    name = doc["cmd"]
    res = {"cmd": name}
    if "id" in doc:
        res["id"] = doc["id"]
    cmds = t.ctx.commands
    after = None
    try:
        if name == "reboot":
            # answer first, reboot after the result went out
            r = {"rebooting": True}
            after = lambda: t.ctx.reboot(500)  # noqa: E731
        elif name == "set":
            r = _set(doc)
        elif name in cmds:
            r = cmds[name](doc)
            if hasattr(r, "send"):  # a coroutine: OTA handlers take a while
                r = await r
        else:
            raise ValueError("unknown command %r (known: %s)"
                             % (name, ", ".join(sorted(list(cmds) + ["reboot", "set"]))))
        if isinstance(r, tuple):
            r, after = r
        res["ok"] = True
        if isinstance(r, dict):
            res.update(r)
    except (ConfigError, ValueError, TypeError) as e:
        res.update(ok=False, error=str(e))
    except Exception as e:
        res.update(ok=False, error="%s: %s" % (type(e).__name__, e))
    t._log.info("command", cmd=name, ok=res["ok"], error=res.get("error"))
    return res, after


def _set(doc):
    for k in doc:
        if k not in ("cmd", "id", "sample_interval_s"):
            raise ValueError("set: unknown setting %r (known: sample_interval_s)" % k)
    if "sample_interval_s" not in doc:
        raise ValueError("set: nothing to set (known: sample_interval_s)")
    v = doc["sample_interval_s"]
    try:
        check("telemetry.interval_s", v)
    except ConfigError as e:
        raise ValueError("sample_interval_s: %s" % e.msg)
    t.ctx.cfg.update({"telemetry.interval_s": v})
    t.interval_s = v
    return {"sample_interval_s": v}
