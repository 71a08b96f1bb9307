#!/usr/bin/env python3
"""Print the readings as they arrive: a small paho-mqtt subscriber for `make run`.

    python tools/watch.py mqtt://[user[:password]@]host[:port] [TOPIC ...]

TOPIC defaults to sensors/# (what Telegraf's mqtt_consumer reads). Device status is
retained and RabbitMQ hands retained messages only to exact-topic subscribers, so name a
device's topic to see its birth/will: devices/perch-xxxxxx/status.
"""

import sys
import time
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho


def parse(url):
    u = urlsplit(url)
    if u.scheme not in ("mqtt", "mqtts"):
        raise SystemExit("watch: URL must start with mqtt:// or mqtts://")
    cred = u.netloc.rpartition("@")[0]
    user = password = None
    if cred:
        # the password follows the last colon: RabbitMQ user names may be vhost:user
        user, colon, password = cred.rpartition(":")
        if not colon:
            user, password = cred, None
        user = unquote(user)
        password = unquote(password) if password is not None else None
    tls = u.scheme == "mqtts"
    if not u.hostname:
        raise SystemExit("watch: URL has no host")
    return u.hostname, u.port or (8883 if tls else 1883), user, password, tls


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    host, port, user, password, tls = parse(argv[1])
    topics = argv[2:] or ["sensors/#"]
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="perch-watch-%d" % time.time())
    if user is not None:
        c.username_pw_set(user, password)
    if tls:
        c.tls_set()
        c.tls_insecure_set(True)

    def on_connect(client, userdata, flags, rc, props=None):
        if rc != 0:
            print("watch: broker refused: %s" % rc, file=sys.stderr)
            return
        print("watch: connected to %s:%d, subscribed to %s" % (host, port, " ".join(topics)),
              file=sys.stderr, flush=True)
        client.subscribe([(t, 1) for t in topics])

    def on_message(client, userdata, m):
        print("%s %s" % (m.topic, m.payload.decode(errors="replace")), flush=True)

    c.on_connect = on_connect
    c.on_message = on_message
    try:
        c.connect(host, port, keepalive=30)
        c.loop_forever()
    except KeyboardInterrupt:
        pass
    except OSError as e:
        print("watch: cannot reach %s:%d: %s" % (host, port, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
