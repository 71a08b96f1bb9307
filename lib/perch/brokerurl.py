# MQTT broker URLs (SPEC §5): mqtt[s]://[user[:password]@]host[:port], where RabbitMQ user
# names may be "vhost:user" (so the password follows the last colon). A URL is parsed once:
# the uplink loads this module when it needs it and drops it after.

from perch.uplink import UplinkError


def _unquote(s):
    # %XX escapes, so that a user name may carry ':' or '@'
    b = s.encode()
    out = bytearray()
    i = 0
    while i < len(b):
        if b[i] == 37 and i + 2 < len(b):
            out.append(int(b[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(b[i])
            i += 1
    return out.decode()


def parse_url(url):
    """mqtt[s]://[user[:password]@]host[:port] -> dict; UplinkError names what is wrong."""
    if not isinstance(url, str):
        raise UplinkError("mqtt.url must be a string")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("mqtt", "mqtts"):
        raise UplinkError("mqtt.url must start with mqtt:// or mqtts://")
    cred, at, hostport = rest.split("/", 1)[0].rpartition("@")
    user = password = None
    if at:
        u, colon, p = cred.rpartition(":")
        if colon:
            user, password = _unquote(u), _unquote(p)
        else:
            user = _unquote(cred)
        if not user:
            raise UplinkError("mqtt.url has an empty user name")
    tls = scheme == "mqtts"
    if hostport.startswith("["):
        host, _, ps = hostport[1:].partition("]")
        ps = ps[1:]
    else:
        host, _, ps = hostport.partition(":")
    if not host:
        raise UplinkError("mqtt.url has no host")
    try:
        port = int(ps) if ps else (8883 if tls else 1883)
    except ValueError:
        raise UplinkError("mqtt.url port %r is not a number" % ps)
    if not 0 < port < 65536:
        raise UplinkError("mqtt.url port %d is out of range" % port)
    return {"host": host, "port": port, "user": user, "password": password, "tls": tls}


def public_url(url):
    """The broker URL without its password, for status pages and logs."""
    try:
        u = parse_url(url)
    except UplinkError:
        return None
    who = ""
    if u["user"] is not None:
        who = u["user"] + ("@" if u["password"] is None else ":***@")
    return "%s://%s%s:%d" % ("mqtts" if u["tls"] else "mqtt", who, u["host"], u["port"])
