#!/usr/bin/env python3
"""Send one command to many boards over MQTT and collect each board's result.

    python tools/fleet.py BROKER_URL COMMAND [ARG] DEVICE... [--timeout S]
    python tools/fleet.py BROKER_URL COMMAND [ARG] --devices-file FILE

COMMAND is `ota VERSION`, `rollback`, `reboot`, `interval SECONDS` or `json '{...}'`.
Each device gets the command on devices/<id>/cmd; its answer comes on
devices/<id>/cmd/result. The exit status is 0 only when every device answered ok.
"""

import argparse
import json
import sys
import threading
import time

import paho.mqtt.client as paho

from watch import parse

COMMANDS = {
    "ota": lambda a: {"cmd": "ota", "version": a},
    "rollback": lambda a: {"cmd": "rollback"},
    "reboot": lambda a: {"cmd": "reboot"},
    "interval": lambda a: {"cmd": "set", "sample_interval_s": int(a)},
    "json": lambda a: json.loads(a),
}
NEEDS_ARG = ("ota", "interval", "json")


def run(url, doc, devices, timeout=60.0):
    """Publish doc to every device; return {device: result dict or None (no answer)}."""
    host, port, user, password, tls = parse(url)
    results = dict.fromkeys(devices)
    done = threading.Condition()
    subscribed = threading.Event()
    c = paho.Client(paho.CallbackAPIVersion.VERSION2,
                    client_id="perch-fleet-%d" % time.monotonic_ns())
    if user is not None:
        c.username_pw_set(user, password)
    if tls:
        c.tls_set()
        c.tls_insecure_set(True)

    def on_message(client, userdata, m):
        dev = m.topic.split("/")[1]
        try:
            res = json.loads(m.payload)
        except ValueError:
            res = {"ok": False, "error": "unreadable result %r" % m.payload[:60]}
        with done:
            if dev in results and results[dev] is None:
                results[dev] = res
                done.notify_all()

    # RabbitMQ does not route retained or wildcard traffic as other brokers do: subscribe to
    # each device's exact result topic before sending anything.
    c.on_connect = lambda cl, u, f, rc, p=None: cl.subscribe(
        [("devices/%s/cmd/result" % d, 1) for d in devices])
    c.on_subscribe = lambda cl, u, mid, rcs, p=None: subscribed.set()
    c.on_message = on_message
    c.connect(host, port, keepalive=30)
    c.loop_start()
    try:
        if not subscribed.wait(15):
            raise SystemExit("fleet: the broker did not confirm the subscription")
        payload = json.dumps(doc)
        for d in devices:
            c.publish("devices/%s/cmd" % d, payload, qos=1).wait_for_publish(10)
        deadline = time.monotonic() + timeout
        with done:
            while any(v is None for v in results.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                done.wait(left)
    finally:
        c.loop_stop()
        c.disconnect()
    return results


def main(argv=None):
    p = argparse.ArgumentParser(prog="fleet", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", help="broker URL, mqtt[s]://[user[:password]@]host[:port]")
    p.add_argument("command", choices=sorted(COMMANDS))
    p.add_argument("rest", nargs="*", help="the command's argument, then device ids")
    p.add_argument("--devices-file", help="a file with one device id per line")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for answers")
    a = p.parse_args(argv)
    rest = list(a.rest)
    arg = rest.pop(0) if a.command in NEEDS_ARG and rest else None
    if a.command in NEEDS_ARG and arg is None:
        p.error("%s needs an argument" % a.command)
    try:
        doc = COMMANDS[a.command](arg)
    except ValueError as e:
        p.error("bad argument for %s: %s" % (a.command, e))
    devices = rest
    if a.devices_file:
        with open(a.devices_file) as f:
            devices += [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    if not devices:
        p.error("no devices given")
    results = run(a.url, doc, devices, a.timeout)
    failed = 0
    for dev, res in results.items():
        if res is None:
            failed += 1
            print("%-14s  NO ANSWER" % dev)
        else:
            failed += not res.get("ok")
            print("%-14s  %s  %s" % (dev, "ok   " if res.get("ok") else "ERROR",
                                     json.dumps(res, sort_keys=True)))
    print("%d of %d answered ok" % (len(results) - failed, len(results)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
