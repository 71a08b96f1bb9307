# Telemetry's setup: the outbox, the sensor drivers and the broker. Runs at boot and when
# mqtt.url changes; telemetry loads it then and drops it after, so that a running board does
# not keep code it runs once.
#
# telemetry.sensors lists the drivers: "mcu", "sim", or objects such as
#   {"driver": "adc", "pin": 34}, {"driver": "dht22", "pin": 4},
#   {"driver": "bme280", "scl": 22, "sda": 21, "bus": 0, "addr": 118}

import asyncio

from perch import telemetry as t
from perch.config import drop
from perch.outbox import Outbox
from perch.sensors import Driver, SensorError


def setup():
    c = t.ctx
    cfg = c.cfg
    did = c.device_id
    spool = cfg["mqtt.spool"]
    ob = t.ob = Outbox(cfg["mqtt.buffer"], "mqtt-spool.dat" if spool else None, spool)
    # measurement and tags never change: escaped once, by code needed only now
    from perch import lineproto

    ob.source(lineproto.prefix("device", (("device", did),)))
    for spec in cfg["telemetry.sensors"]:
        try:
            d = make(spec)
            ob.source(lineproto.prefix(d.measurement,
                                       (("device", did), ("sensor", d.name)) + d.tags))
            t.drivers.append(d)
        except Exception as e:  # a bad entry or absent hardware: log it, keep the rest
            t._log.error("sensor not set up", spec=spec, error=str(e))
    drop("lineproto")
    t.interval_s = cfg["telemetry.interval_s"]
    c.status["mqtt"] = t.status
    broker(cfg["mqtt.url"], True)
    if t.up:
        # OTA confirmation waits for MQTT when a broker is configured (the health check)
        t._log.info("broker", url=t.up.url, sensors=len(t.drivers))


def broker(url, first=False):
    """Follow mqtt.url: the settings page or PATCH /api/config changed it, no reboot.
    first: at boot, or the uplink comes back after an install (telemetry.quiet).

    Without a broker the uplink (umqtt, ssl: a third of telemetry's RAM) is not loaded.
    """
    t._url = url
    if not url:
        return  # keeps the old connection until reboot; nothing sensible to switch to
    from perch import uplink
    from perch.uplink import Uplink, UplinkError

    c = t.ctx
    cfg = c.cfg
    try:
        if t.up:
            uplink._mc("target", t.up, url)
            t.up._die(UplinkError("broker changed"))  # reconnect now
            t.up._kick.set()  # cut a backoff wait short
        else:
            did = c.device_id
            t.up = Uplink(url, did, cfg["mqtt.keepalive_s"], cfg["mqtt.timeout_s"] * 1000,
                          cfg["mqtt.backoff_max_s"] * 1000, cfg["mqtt.ca"],
                          "devices/%s/status" % did, "devices/%s/cmd" % did, t._on_cmd)
            if cfg["log.forward"] and t._on_log not in t.log.forwarders:  # back from quiet
                t.log.forwarders.append(t._on_log)
            # telemetry's: a function made here would keep this module alive
            c.health["mqtt"] = t._healthy
            t._tasks.append(asyncio.create_task(t.up.run()))
            t._tasks.append(asyncio.create_task(t._pump()))
        t.config_error = None
        if not first:
            t._log.info("broker changed", url=t.up.url)
    except UplinkError as e:
        t.config_error = "mqtt.url: %s" % e
        t._log.error("bad broker URL", error=str(e))


def make(spec):
    """A driver from one telemetry.sensors entry; SensorError says what is wrong with it."""
    if isinstance(spec, str):
        spec = {"driver": spec}
    if not isinstance(spec, dict):
        raise SensorError("sensor entry must be a name or an object, got %r" % (spec,))
    name = spec.get("driver")
    opts = (("pin",) if name in ("adc", "dht22") else ("bus", "scl", "sda", "addr")
            if name == "bme280" else () if name in ("mcu", "sim") else None)
    if opts is None:
        raise SensorError("unknown sensor driver %r (known: adc, bme280, dht22, mcu, sim)"
                          % (name,))
    kw = {}
    for k, v in spec.items():
        if k == "driver":
            continue
        if k not in opts:
            raise SensorError("%s: unknown option %r" % (name, k))
        if not isinstance(v, int) or isinstance(v, bool):
            raise SensorError("%s: %s must be an integer" % (name, k))
        kw[k] = v
    if name == "bme280":
        from perch import bme280  # its compensation code is only loaded when configured

        return bme280.BME280(**kw)
    pin = kw.get("pin", 0)
    if opts and not (kw and 0 <= pin <= 48):
        raise SensorError("%s: needs a pin, a GPIO number" % name)
    return Driver(name, pin)
