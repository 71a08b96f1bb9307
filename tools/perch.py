#!/usr/bin/env python3
"""perch: build, sign, serve, deploy and simulate Perch boards."""

import argparse
import sys
import tempfile
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))

import build  # noqa: E402
import deps  # noqa: E402


def cmd_deps(args):
    deps.fetch(force=args.force)
    print(deps.DEPS)


def cmd_build(args):
    sign = None
    if args.key:
        import bundle

        key = bundle.load_private(args.key)

        def sign(data):
            return bundle.sign_bytes(data, key)

    print(build.build(args.version, sign=sign, out_dir=args.out))


def cmd_keygen(args):
    import bundle

    for what, path in bundle.keygen(args.out).items():
        print("%s: %s" % (what, path))


def cmd_release(args):
    import update_server

    e = update_server.release(args.dir, args.bundle, args.key, notes=args.notes or "")
    print("released %s as %s (%d bytes)" % (e["version"], e["file"], e["size"]))


def cmd_serve(args):
    import update_server

    return update_server.serve(args.dir, args.port, args.host)


def cmd_sim(args):
    from sim import runner

    root = Path(args.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "boot.py").exists():
        # An empty root is a fresh board: install the working tree's build, as deploy would.
        with tempfile.TemporaryDirectory() as tmp:
            build.install_root(root, build.build(out_dir=tmp))
    return runner.run(root, http_port=args.http_port, dns_port=args.dns_port, heap=args.heap,
                      world=args.world, mac=args.mac)


def cmd_deploy(args):
    import deploy

    deploy.deploy(args.port, config=args.config, reset=not args.no_reset)


def main(argv=None):
    p = argparse.ArgumentParser(prog="perch", description=__doc__)
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    s = sub.add_parser("deps", help="fetch the pinned device dependencies")
    s.add_argument("--force", action="store_true", help="fetch again even if present")
    s.set_defaults(func=cmd_deps)

    s = sub.add_parser("build", help="compile with mpy-cross and pack the app bundle")
    s.add_argument("--version", help="app version (default: the package's own)")
    s.add_argument("--out", help="output folder (default: dist/)")
    s.add_argument("--key", help="private key (PEM) to sign the bundle with")
    s.set_defaults(func=cmd_build)

    s = sub.add_parser("keygen", help="make an RSA-2048 signing key pair")
    s.add_argument("--out", required=True, help="folder for the key files")
    s.set_defaults(func=cmd_keygen)

    s = sub.add_parser("release", help="add a bundle to an update-server folder, sign index")
    s.add_argument("dir", help="update-server folder (holds index.json)")
    s.add_argument("bundle", help="bundle file to add")
    s.add_argument("--key", help="private key (PEM) to sign index.json with")
    s.add_argument("--notes", help="release notes")
    s.set_defaults(func=cmd_release)

    s = sub.add_parser("serve", help="serve an update-server folder over HTTP")
    s.add_argument("dir")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--host", default="127.0.0.1")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("deploy", help="install onto a board over serial with mpremote")
    s.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyUSB0")
    s.add_argument("--config", help="seed config.json to install")
    s.add_argument("--no-reset", action="store_true", help="do not reset the board afterwards")
    s.set_defaults(func=cmd_deploy)

    s = sub.add_parser("sim", help="run a virtual board")
    s.add_argument("--root", default="run/board", help="the board's filesystem folder")
    s.add_argument("--http-port", type=int, default=8080)
    s.add_argument("--dns-port", type=int, default=5353)
    s.add_argument("--heap", default="512k", help="MicroPython heap, e.g. 160k")
    s.add_argument("--world", help="world file: simulated Wi-Fi networks and sensors")
    s.add_argument("--mac", help="12 hex digits (default: derived from the root path)")
    s.set_defaults(func=cmd_sim)

    args = p.parse_args(argv)
    try:
        return args.func(args) or 0
    except (deps.DepsError, build.bundle.BundleError, ValueError, OSError) as e:
        print("perch: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
