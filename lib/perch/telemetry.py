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
from perch.brokerurl import UplinkError, public_url
from perch.config import ConfigError, check
from perch.outbox import Outbox

# time.time_ns() counts from the port's epoch: 1970 on Unix, 2000 on the ESP32
_EPOCH_NS = 946684800 * 1000000000 if time.gmtime(0)[0] == 2000 else 0
# plain ints: both exceed the ESP32 small-int range that const() folds
_SYNCED_AFTER_S = 1577836800  # 2020-01-01: a clock before that was never set
_LOG_QUEUE = const(8)

_log = log.Logger("telemetry")


def unix_s():
    return time.time() + _EPOCH_NS // 1000000000


def clock_synced():
    return unix_s() > _SYNCED_AFTER_S


def now_ns():
    return time.time_ns() + _EPOCH_NS


class Telemetry:
    def __init__(self, ctx):
        self.ctx = ctx
        cfg = ctx.cfg
        did = ctx.device_id
        self.topic = "sensors/" + did
        self.cmd_topic = "devices/%s/cmd" % did
        self.result_topic = "devices/%s/cmd/result" % did
        self.log_topic = "devices/%s/log" % did
        self.qos = cfg["mqtt.qos"]
        spool = cfg["mqtt.spool"]
        self.outbox = Outbox(cfg["mqtt.buffer"], "mqtt-spool.dat" if spool else None, spool)
        self.tags = (("device", did),)
        self.drivers = []
        for spec in cfg["telemetry.sensors"]:
            try:
                self.drivers.append(sensors.make(spec))
            except Exception as e:  # a bad entry or absent hardware: log it, keep the rest
                _log.error("sensor not set up", spec=spec, error=str(e))
        # the `set` command changes it at once, even over a PERCH_TELEMETRY_INTERVAL_S override
        self.interval_s = cfg["telemetry.interval_s"]
        self.errors = 0
        self.samples = 0
        self.up = None
        self.config_error = None
        self._cmds = []
        self._cmd_ev = asyncio.Event()
        self._logq = []
        self._log_ev = asyncio.Event()
        self._url = url = cfg["mqtt.url"]
        if url:
            try:
                self._start_uplink(url)
            except UplinkError as e:
                self.config_error = "mqtt.url: %s" % e
                _log.error("bad broker URL", error=str(e))

    # -- status -------------------------------------------------------------------------
    def status(self):
        st = self.outbox.stats()
        if self.up:
            st.update(self.up.status())
        else:
            st.update(state="disabled", broker=None, last_error=self.config_error)
        st["samples"] = self.samples
        st["interval_s"] = self.interval_s
        st["sensor_errors"] = self.errors
        return st

    # -- sampling -----------------------------------------------------------------------
    async def sample_loop(self):
        was_up = False
        while True:
            t0 = time.ticks_ms()
            await self.sample_once()
            up = _station_up()
            if up and not was_up:
                if self.up:
                    self.up.kick()  # the network is back: no need to sit out the backoff
                if not clock_synced():
                    from perch import sntp  # only a board without a set clock needs it

                    asyncio.create_task(sntp.sync())
            was_up = up
            self._follow_config()
            # re-read each round: the `set` command changes it without a reboot
            period = self.interval_s * 1000
            left = period - time.ticks_diff(time.ticks_ms(), t0)
            await asyncio.sleep_ms(left if left > 0 else 0)

    async def sample_once(self):
        synced = clock_synced()
        for d in self.drivers:
            try:
                fields = await d.read()
                if fields is None:
                    continue
                ts = now_ns() if synced else None
                line = lineproto.encode(d.measurement, self.tags + (("sensor", d.name),) + d.tags,
                                        fields.items(), ts, d.types)
            except Exception as e:  # one bad read is logged and skipped
                self.errors += 1
                _log.warning("sensor read failed", sensor=d.name, error=str(e))
                continue
            self._put(line)
        # no gc.collect() here: a full collection of a large heap stalls the loop
        st = self.outbox.stats()
        fields = [("heap_free", gc.mem_free()), ("uptime_s", self.ctx.uptime_s()),
                  ("queued", st["queued"]), ("dropped", st["dropped"])]
        rssi = _rssi()
        if rssi is not None:
            fields.append(("rssi", rssi))
        self._put(lineproto.encode("device", self.tags, fields, now_ns() if synced else None,
                                   _DEVICE_TYPES))
        self.samples += 1

    def _follow_config(self):
        # the settings page or PATCH /api/config changed the broker: follow it, no reboot
        url = self.ctx.cfg["mqtt.url"]
        if url == self._url:
            return
        self._url = url
        if not url:
            return  # keeps the old connection until reboot; nothing sensible to switch to
        try:
            if self.up:
                self.up.retarget(url)
            else:
                self._start_uplink(url)
                self.start_tasks()
            self.config_error = None
            _log.info("broker changed", url=public_url(url))
        except UplinkError as e:
            self.config_error = "mqtt.url: %s" % e
            _log.error("bad broker URL", error=str(e))

    def _start_uplink(self, url):
        # imported only with a broker: umqtt, ssl and the uplink are a third of telemetry's
        # RAM, which the portal needs while a fresh board sits in AP mode
        from perch.uplink import Uplink

        cfg = self.ctx.cfg
        did = self.ctx.device_id
        self.up = Uplink(url, did, cfg["mqtt.keepalive_s"], cfg["mqtt.timeout_s"] * 1000,
                         cfg["mqtt.backoff_max_s"] * 1000, cfg["mqtt.ca"],
                         "devices/%s/status" % did)
        self.up.subscribe(self.cmd_topic, self._on_cmd)
        if cfg["log.forward"]:
            log.forwarders.append(self._on_log)
        self.ctx.health["mqtt"] = lambda: self.up is not None and self.up.connected

    def start_tasks(self):
        up = self.up
        if up is None:
            return
        asyncio.create_task(up.run())
        asyncio.create_task(self.pump())
        asyncio.create_task(self.command_loop())
        if self.ctx.cfg["log.forward"]:
            asyncio.create_task(self.log_loop())

    def _put(self, line):
        if not self.up:
            _log.info("reading", line=line)  # no broker: the log is the only consumer
        self.outbox.put(line)

    # -- publishing ---------------------------------------------------------------------
    async def pump(self):
        """Oldest reading first; it leaves the outbox only once the broker has it."""
        ob = self.outbox
        up = self.up
        if up is None:
            return
        while True:
            await ob.wait()
            await up.wait_connected()
            item = ob.peek()
            if item is None:
                continue
            try:
                await up.publish(self.topic, item, False, self.qos)
                ob.pop()
            except UplinkError:
                await asyncio.sleep_ms(50)  # link went down; run() reconnects, we retry
            except Exception as e:  # never let the pump die: the buffer would only grow
                _log.exc(e, "publish failed")
                await asyncio.sleep_ms(500)

    # -- commands -----------------------------------------------------------------------
    def _on_cmd(self, topic, msg):
        # called from the uplink's reader: queue it, a task runs it
        if len(self._cmds) >= 8:
            _log.warning("command dropped: queue full")
            return
        self._cmds.append(bytes(msg))
        self._cmd_ev.set()

    async def command_loop(self):
        up = self.up
        if up is None:
            return
        while True:
            while not self._cmds:
                self._cmd_ev.clear()
                await self._cmd_ev.wait()
            raw = self._cmds.pop(0)
            res, after = await self.run_command(raw)
            try:
                await up.wait_connected()
                await up.publish(self.result_topic, json.dumps(res), False, 1)
            except UplinkError as e:
                _log.warning("command result not sent", error=str(e))
            if after:
                after()

    async def run_command(self, raw):
        """(result dict, callable to run after the result is out, or None)."""
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
        h = self.ctx.commands.get(name)
        if h is None:
            res.update(ok=False, error="unknown command %r (known: %s)"
                       % (name, ", ".join(sorted(self.ctx.commands))))
            return res, None
        after = None
        try:
            r = h(doc)
            if hasattr(r, "send"):  # a coroutine: OTA handlers take a while
                r = await r
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

    def cmd_reboot(self, doc):
        # answer first, reboot after the result went out
        return {"rebooting": True}, lambda: self.ctx.reboot(500)

    def cmd_set(self, doc):
        known = ("sample_interval_s",)
        for k in doc:
            if k not in ("cmd", "id") and k not in known:
                raise ValueError("set: unknown setting %r (known: %s)" % (k, ", ".join(known)))
        if "sample_interval_s" not in doc:
            raise ValueError("set: nothing to set (known: %s)" % ", ".join(known))
        v = doc["sample_interval_s"]
        try:
            check("telemetry.interval_s", v)
        except ConfigError as e:
            raise ValueError("sample_interval_s: %s" % e.msg)
        self.ctx.cfg.update({"telemetry.interval_s": v})
        self.interval_s = v
        return {"sample_interval_s": v}

    # -- log forwarding -----------------------------------------------------------------
    def _on_log(self, level, line):
        if len(self._logq) >= _LOG_QUEUE:
            self._logq.pop(0)  # a log storm keeps only the newest lines
        self._logq.append(line)
        self._log_ev.set()

    async def log_loop(self):
        up = self.up
        if up is None:
            return
        while True:
            while not self._logq:
                self._log_ev.clear()
                await self._log_ev.wait()
            await up.wait_connected()
            line = self._logq.pop(0)
            try:
                await up.publish(self.log_topic, line, False, 0)
            except UplinkError:
                pass  # best effort: the console has the line anyway


_DEVICE_TYPES = {"rssi": lineproto.INT, "heap_free": lineproto.INT, "uptime_s": lineproto.INT,
                 "queued": lineproto.INT, "dropped": lineproto.INT}


def _station_up():
    try:
        return hw.wlan(hw.STA_IF).isconnected()
    except Exception:
        return False


def _rssi():
    try:
        w = hw.wlan(hw.STA_IF)
        return int(w.status("rssi")) if w.isconnected() else None
    except Exception:
        return None


def setup(ctx):
    t = Telemetry(ctx)
    ctx.telemetry = t
    ctx.status["mqtt"] = t.status
    if t.up:
        # OTA confirmation waits for MQTT when a broker is configured (see _start_uplink)
        _log.info("broker", url=public_url(ctx.cfg["mqtt.url"]), sensors=len(t.drivers))
    ctx.commands["reboot"] = t.cmd_reboot
    ctx.commands["set"] = t.cmd_set
    asyncio.create_task(t.sample_loop())
    t.start_tasks()
    return t
