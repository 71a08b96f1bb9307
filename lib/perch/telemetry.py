# Telemetry: samples the sensors every telemetry.interval_s, encodes each reading as a
# line of InfluxDB line protocol stamped when it was taken, queues it in the outbox and
# publishes it on sensors/<id>. Also the command channel devices/<id>/cmd and optional
# forwarding of WARNING+ log lines to devices/<id>/log.
#
# Commands: ctx.commands maps a "cmd" name to handler(doc), doc being the whole JSON
# object. A handler returns a dict merged into the result, or (dict, after) where after()
# runs once the result is published (reboot), or is a coroutine (OTA); ValueError or
# ConfigError become {"ok": false, "error": str(e)}. Other features register theirs in
# their setup(ctx), e.g. ctx.commands["rollback"] = handler.

import asyncio
import gc
import json
import time

from micropython import const

from perch import hw, lineproto, log, sensors
from perch.config import ConfigError, check
from perch.outbox import Outbox

# time.time_ns() counts from the port's epoch: 1970 on Unix, 2000 on the ESP32
_EPOCH_NS = 946684800 * 1000000000 if time.gmtime(0)[0] == 2000 else 0
# a plain int: it exceeds the ESP32 small-int range that const() folds
_SYNCED_AFTER_NS = 1577836800 * 1000000000  # 2020-01-01: a clock before that was never set
_QUEUE = const(8)  # commands or log lines waiting to be handled

_log = log.Logger("telemetry")


def now_ns():
    """Nanosecond Unix time, or None while the clock was never set."""
    t = time.time_ns() + _EPOCH_NS
    return t if t > _SYNCED_AFTER_NS else None


class Telemetry:
    def __init__(self, ctx):
        self.ctx = ctx
        cfg = ctx.cfg
        did = ctx.device_id
        spool = cfg["mqtt.spool"]
        self.outbox = Outbox(cfg["mqtt.buffer"], "mqtt-spool.dat" if spool else None, spool)
        self.drivers = []
        for spec in cfg["telemetry.sensors"]:
            try:
                d = sensors.make(spec)
                # measurement and tags never change: encoded once
                d.prefix = lineproto.prefix(d.measurement,
                                            (("device", did), ("sensor", d.name)) + d.tags)
                self.drivers.append(d)
            except Exception as e:  # a bad entry or absent hardware: log it, keep the rest
                _log.error("sensor not set up", spec=spec, error=str(e))
        self.prefix = lineproto.prefix("device", (("device", did),))
        # the `set` command changes it at once, even over a PERCH_TELEMETRY_INTERVAL_S override
        self.interval_s = cfg["telemetry.interval_s"]
        self.errors = 0
        self.samples = 0
        self.up = None
        self.config_error = None
        self._url = 0  # not a URL: the first _follow_config() sets up the configured one
        self._q = []  # (is a command, payload): commands and log lines to handle
        self._ev = asyncio.Event()
        self._follow_config(True)

    def status(self):
        st = self.outbox.stats()
        st.update(self.up.status() if self.up else
                  {"state": "disabled", "broker": None, "last_error": self.config_error})
        st["samples"] = self.samples
        st["interval_s"] = self.interval_s
        st["sensor_errors"] = self.errors
        return st

    # -- sampling -----------------------------------------------------------------------
    async def sample_loop(self):
        was_up = False
        while True:
            t0 = time.ticks_ms()
            ts = now_ns()
            for d in self.drivers:
                try:
                    fields = await d.read()
                    if fields is not None:
                        self._put(lineproto.line(d.prefix, fields, ts and now_ns()))
                except Exception as e:  # one bad read is logged and skipped
                    self.errors += 1
                    _log.warning("sensor read failed", sensor=d.name, error=str(e))
            # no gc.collect() here: a full collection of a large heap stalls the loop
            ob = self.outbox
            try:
                w = hw.wlan(hw.STA_IF)
                up = w.isconnected()
                rssi = int(w.status("rssi")) if up else None
            except Exception:
                up = rssi = None
            self._put(lineproto.line(self.prefix, (
                ("heap_free", gc.mem_free()), ("uptime_s", self.ctx.uptime_s()),
                ("queued", len(ob)), ("dropped", ob.dropped),
                ("rssi", rssi)), ts and now_ns()))
            self.samples += 1
            if up and not was_up:
                if self.up:
                    self.up.kick()  # the network is back: no need to sit out the backoff
                if ts is None:
                    from perch import sntp  # only a board without a set clock needs it

                    asyncio.create_task(sntp.sync())
            was_up = up
            self._follow_config()
            # re-read each round: the `set` command changes it without a reboot
            left = self.interval_s * 1000 - time.ticks_diff(time.ticks_ms(), t0)
            await asyncio.sleep_ms(left if left > 0 else 0)

    def _put(self, line):
        if not self.up:
            _log.info("reading", line=line)  # no broker: the log is the only consumer
        self.outbox.put(line)

    # -- the broker -------------------------------------------------------------------------
    def _follow_config(self, first=False):
        # the settings page or PATCH /api/config changed the broker: follow it, no reboot;
        # without a broker the uplink (umqtt, ssl: a third of telemetry's RAM) is not loaded
        cfg = self.ctx.cfg
        url = cfg["mqtt.url"]
        if url == self._url:
            return
        self._url = url
        if not url:
            return  # keeps the old connection until reboot; nothing sensible to switch to
        from perch.uplink import Uplink, UplinkError

        try:
            if self.up:
                self.up.retarget(url)
            else:
                did = self.ctx.device_id
                self.up = Uplink(url, did, cfg["mqtt.keepalive_s"], cfg["mqtt.timeout_s"] * 1000,
                                 cfg["mqtt.backoff_max_s"] * 1000, cfg["mqtt.ca"],
                                 "devices/%s/status" % did, "devices/%s/cmd" % did,
                                 self._on_cmd)
                if cfg["log.forward"]:
                    log.forwarders.append(self._on_log)
                self.ctx.health["mqtt"] = lambda: self.up.state == "connected"
                # at setup(), setup() starts the tasks once the loop runs
                if not first:
                    self.start_tasks()
            self.config_error = None
            if not first:
                _log.info("broker changed", url=self.up.url)
        except UplinkError as e:
            self.config_error = "mqtt.url: %s" % e
            _log.error("bad broker URL", error=str(e))

    def start_tasks(self):
        if self.up:
            asyncio.create_task(self.up.run())
            asyncio.create_task(self.pump(self.up))
            asyncio.create_task(self.chores(self.up))

    async def pump(self, up):
        """Oldest reading first; it leaves the outbox only once the broker has it."""
        from perch.uplink import UplinkError

        ob = self.outbox
        topic = "sensors/" + self.ctx.device_id
        qos = self.ctx.cfg["mqtt.qos"]
        while True:
            await ob.wait()
            await up.wait_connected()
            item = ob.peek()
            if item is None:
                continue
            try:
                await up.publish(topic, item, False, qos)
                ob.pop()
            except UplinkError:
                await asyncio.sleep_ms(50)  # link went down; run() reconnects, we retry
            except Exception as e:  # never let the pump die: the buffer would only grow
                _log.exc(e, "publish failed")
                await asyncio.sleep_ms(500)

    # -- commands and log forwarding ----------------------------------------------------
    def _on_cmd(self, msg):
        # called from the uplink's reader: queue it, chores() runs it
        if sum(1 for c, _ in self._q if c) >= _QUEUE:
            _log.warning("command dropped: queue full")
            return
        self._q.append((True, bytes(msg)))
        self._ev.set()

    def _on_log(self, level, line):
        q = self._q
        if len(q) >= 2 * _QUEUE:
            for i, (c, _) in enumerate(q):
                if not c:
                    q.pop(i)  # a log storm keeps only the newest lines
                    break
            else:
                return
        q.append((False, line))
        self._ev.set()

    async def chores(self, up):
        from perch.uplink import UplinkError

        did = self.ctx.device_id
        while True:
            while not self._q:
                self._ev.clear()
                await self._ev.wait()
            cmd, raw = self._q.pop(0)
            after = None
            if cmd:
                res, after = await self._run(raw)
                raw = json.dumps(res)
            try:
                await up.wait_connected()
                # results QoS 1; log lines are best effort: the console has them anyway
                await up.publish("devices/%s/%s" % (did, "cmd/result" if cmd else "log"), raw,
                                 False, 1 if cmd else 0)
            except UplinkError as e:
                if cmd:
                    _log.warning("command result not sent", error=str(e))
            if after:
                after()

    async def _run(self, raw):
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
        cmds = self.ctx.commands
        after = None
        try:
            if name == "reboot":
                # answer first, reboot after the result went out
                r = {"rebooting": True}
                after = lambda: self.ctx.reboot(500)  # noqa: E731
            elif name == "set":
                r = self._set(doc)
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
        _log.info("command", cmd=name, ok=res["ok"], error=res.get("error"))
        return res, after

    def _set(self, doc):
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
        self.ctx.cfg.update({"telemetry.interval_s": v})
        self.interval_s = v
        return {"sample_interval_s": v}


def setup(ctx):
    t = Telemetry(ctx)
    ctx.telemetry = t
    ctx.status["mqtt"] = t.status
    if t.up:
        # OTA confirmation waits for MQTT when a broker is configured (the health check)
        _log.info("broker", url=t.up.url, sensors=len(t.drivers))
    asyncio.create_task(t.sample_loop())
    t.start_tasks()
    return t
