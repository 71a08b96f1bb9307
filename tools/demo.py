"""`make run`: a virtual board with a demo radio world, and a local RabbitMQ when possible.

PORT=8080 make run picks the web port (default: a free one). The board's filesystem lives in
run/board and survives restarts, as a real board's flash would.
"""

import json
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
REPO = TOOLS.parent
sys.path.insert(0, str(TOOLS))

WORLD = {
    "networks": [
        {"ssid": "HomeNet", "password": "correct horse", "rssi": -48, "channel": 6,
         "security": "wpa2", "hidden": False},
        {"ssid": "Café Ünïcode ☕", "password": "latte-1234", "rssi": -67, "channel": 11,
         "security": "wpa2", "hidden": False},
        {"ssid": "Guest", "password": "", "rssi": -80, "channel": 1, "security": "open",
         "hidden": False},
    ],
    "sensors": {"temperature_c": 21.5, "humidity_pct": 48.0, "pressure_hpa": 1013.2,
                "mcu_temperature": 45.0},
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker():
    """A private RabbitMQ node with the MQTT plugin, or None when it cannot run here."""
    try:
        import rabbit
    except ImportError:
        return None, None
    if not rabbit.available():
        print("demo: rabbitmq-server is not installed; readings stay in the board's buffer")
        return None, None
    node = rabbit.Rabbit()
    print("demo: starting a private RabbitMQ node (about 10 s) ...", flush=True)
    node.start()
    return node, node.url()


def main():
    run = REPO / "run"
    run.mkdir(exist_ok=True)
    fresh = bool(os.environ.get("FRESH"))
    if fresh:
        # A board straight out of the box: no saved network, so the setup wizard shows.
        shutil.rmtree(run / "board", ignore_errors=True)
    world = run / "world.json"
    if not world.exists():
        world.write_text(json.dumps(WORLD, ensure_ascii=False, indent=1))
    port = int(os.environ.get("PORT") or free_port())
    # Install the working tree's build each time, keeping the board's config, so that a
    # maker's change shows on the next `make run`.
    import build

    seed = None if fresh else {"wifi": {"networks": [
        {"ssid": "HomeNet", "password": WORLD["networks"][0]["password"], "priority": 1}]}}
    build.install_root(run / "board", build.build(), seed_config=seed)
    node, url = start_broker()
    if url:
        os.environ["PERCH_MQTT_URL"] = url
        os.environ.setdefault("PERCH_TELEMETRY_INTERVAL_S", "5")
        # Every driver: the chip's own sensor, a BME280 on I2C, a DHT22 and a wave.
        sensors = ["mcu", {"driver": "bme280"}, {"driver": "dht22", "pin": 4}, "sim"]
        os.environ.setdefault("PERCH_TELEMETRY_SENSORS", json.dumps(sensors))
    print()
    print("  Perch virtual board")
    print("  portal:   http://127.0.0.1:%d/" % port)
    print("  world:    %s  (edit it: networks appear and vanish live)" % world)
    if fresh:
        print("  setup:    join HomeNet on the portal with password 'correct horse'")
    else:
        print("  setup:    joined HomeNet already; FRESH=1 make run shows the setup wizard")
    if url:
        print("  readings: %s %s %s" % (sys.executable, TOOLS / "watch.py", url))
    print("  stop:     Ctrl-C")
    print(flush=True)
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        import perch

        return perch.main(["sim", "--root", str(run / "board"), "--http-port", str(port),
                           "--dns-port", str(free_port()), "--world", str(world)])
    except KeyboardInterrupt:
        return 0
    finally:
        if node:
            node.stop()
            node.cleanup()


if __name__ == "__main__":
    sys.exit(main())
