# Telemetry: samples the sensors every telemetry.interval_s, queues each reading in the
# outbox stamped when it was taken, and publishes it on sensors/<id> as a line of InfluxDB
# line protocol. Also the command channel devices/<id>/cmd (perch.command, loaded while
# commands wait) and optional forwarding of WARNING+ log lines to devices/<id>/log.
#
# There is one telemetry per board: its state lives in this module, not in an instance.
# Tasks: the sampling loop, and once a broker is configured the uplink's and the pump (which
# publishes readings and forwarded log lines); commands run in a task of their own while
# any wait.

import asyncio
import gc
import time

from micropython import const

from perch import hw, log
from perch.config import drop

# time.time_ns() counts from the port's epoch: 1970 on Unix, 2000 on the ESP32
_EPOCH_NS = 946684800 * 1000000000 if time.gmtime(0)[0] == 2000 else 0
# a plain int: it exceeds the ESP32 small-int range that const() folds
_SYNCED_AFTER_NS = 1577836800 * 1000000000  # 2020-01-01: a clock before that was never set
_QUEUE = const(8)  # commands waiting; twice that many log lines

TYPE_CHECKING = False
if TYPE_CHECKING:  # mypy takes the name as true; MicroPython ignores annotations
    from typing import Any

_log = log.Logger("telemetry")

ctx: Any = None  # the app's Context
ob: Any = None  # the outbox; source 0 is the device measurement, source i + 1 is drivers[i]
up: Any = None  # the uplink, once a broker is configured
drivers: list = []
interval_s = 10  # the `set` command changes it at once, even over a PERCH_* override
errors = 0
samples = 0
config_error: Any = None
_url: Any = 0  # not a URL: the first sampling round sets up the configured one
cmds: list = []  # commands waiting (bytes); the first is the one running
_logq: list = []  # log lines waiting to be forwarded
_tasks: list = []  # the uplink's and the pump's
_quiet = 0  # 1: an install asked for quiet; 2: and the uplink is down and dropped


def status():
    st = ob.stats()
    st.update(up.status() if up else
              {"state": "quiet" if _quiet else "disabled", "broker": None,
               "last_error": config_error})
    st["samples"] = samples
    st["interval_s"] = interval_s
    st["sensor_errors"] = errors
    return st


# -- sampling ---------------------------------------------------------------------------
async def _sample():
    global errors, samples, _url
    was_up = False
    while True:
        t0 = time.ticks_ms()
        # readings are stamped in ns Unix time, unless the clock was never set
        ts = time.time_ns() + _EPOCH_NS > _SYNCED_AFTER_NS
        for i, d in enumerate(drivers):
            try:
                fields = await d.read()
                if fields is not None:
                    _put(i + 1, fields, time.time_ns() + _EPOCH_NS if ts else None)
            except Exception as e:  # one bad read (or a value line protocol cannot carry)
                errors += 1
                _log.warning("sensor read failed", sensor=d.name, error=str(e))
        # no gc.collect() here: a full collection of a large heap stalls the loop
        try:
            w = hw.wlan(hw.STA_IF)
            on = w.isconnected()
            rssi = int(w.status("rssi")) if on else None
        except Exception:
            on = rssi = None
        _put(0, (("heap_free", gc.mem_free()), ("uptime_s", ctx.uptime_s()),
                 ("queued", len(ob)), ("dropped", ob.dropped), ("rssi", rssi)),
             time.time_ns() + _EPOCH_NS if ts else None)
        samples += 1
        if on and not was_up:
            if up:
                up._kick.set()  # the network is back: no need to sit out the backoff
            if not ts:
                from perch import sntp  # only a board without a set clock needs it

                asyncio.create_task(sntp.sync())  # it drops itself when done
                del sntp  # this frame lives on
        was_up = on
        # mqtt.url changed (settings page, PATCH /api/config), or an install gave the uplink
        # back (quiet(False)): follow it without a reboot
        if ctx.cfg["mqtt.url"] != _url and not _quiet:
            from perch import telesetup

            try:
                telesetup.broker(ctx.cfg["mqtt.url"], _url == 0)  # 0: back from quiet
            except MemoryError:
                _url = 0  # the next round tries again
            drop("telesetup")
            del telesetup  # this frame lives on
        # re-read each round: the `set` command changes it without a reboot
        left = interval_s * 1000 - time.ticks_diff(time.ticks_ms(), t0)
        await asyncio.sleep_ms(left if left > 0 else 0)


def _put(src, fields, ts):
    q = ob.put(src, fields, ts)
    if not (up or _quiet) and _url != 0:  # (0: the uplink comes back from quiet)
        _log.info("reading", line=ob.line(q).decode())  # no broker: the log is the only consumer


# -- the broker -------------------------------------------------------------------------
def _healthy():
    return up and up.state == "connected"


def quiet(on):
    """ctx.quiet: an install starts (True): close the link and drop the uplink's code, so
    the upload has its RAM; sampling goes on into the outbox. It failed (False): the next
    sampling round brings the uplink back and the outbox replays, oldest first."""
    global _quiet, _url
    if on:
        _quiet = _quiet or 1
        if not cmds:
            _hush()  # else once the running command published its result (command.loop)
    else:
        if _quiet > 1:
            _url = 0
        _quiet = 0


def _hush():
    # no code loaded for it: an upload is about to take the RAM there is
    global up, _quiet
    u = up
    if u and _quiet == 1:
        _quiet = 2
        up = None
        for k in _tasks:
            k.cancel()
        _tasks.clear()
        if u._stream:
            try:
                u._stream.write(b"\xe0\x00")  # DISCONNECT: a clean close, no will published
            except Exception:
                pass
        u.close()
        _log.info("quiet: uplink down for an install")
        drop("uplink")


async def _pump():
    # readings oldest first, each leaving the outbox only once the broker has it; forwarded
    # log lines in between, best effort (the console has them anyway)
    from perch.uplink import UplinkError

    did = ctx.device_id
    topic = "sensors/" + did
    qos = ctx.cfg["mqtt.qos"]
    while True:
        await ob.wait(_logq)
        await up.wait_connected()
        try:
            if _logq:
                await up.publish("devices/%s/log" % did, _logq.pop(0), False, 0)
                continue
            item = ob.peek()
            if item is not None:
                await up.publish(topic, item, False, qos)
                ob.pop()
        except UplinkError:
            await asyncio.sleep_ms(50)  # link went down; run() reconnects, we retry
        except Exception as e:  # never let the pump die: the buffer would only grow
            _log.exc(e, "publish failed")
            await asyncio.sleep_ms(500)


# -- commands and log forwarding --------------------------------------------------------
def _on_cmd(topic, msg):
    # called from the uplink's reader (cmd is the only topic subscribed): queue it; a task
    # runs the queue, then ends
    if len(cmds) >= _QUEUE:
        _log.warning("command dropped: queue full")
        return
    cmds.append(bytes(msg))
    if len(cmds) == 1:
        from perch import command  # commands are rare: loaded while some wait, dropped after

        asyncio.create_task(command.loop())


def _on_log(level, line):
    if len(_logq) >= 2 * _QUEUE:
        _logq.pop(0)  # a log storm keeps only the newest lines
    _logq.append(line)
    ob._ev.set()


def setup(c):
    global ctx
    ctx = c
    c.quiet = quiet
    from perch import telesetup  # run once: loaded, dropped after

    telesetup.setup()  # starts the uplink's tasks
    drop("telesetup")
    asyncio.create_task(_sample())
