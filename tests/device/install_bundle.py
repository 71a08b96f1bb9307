# Run under micropython with cwd = a board root: installs one bundle file into the inactive
# slot and prints one JSON line with the outcome and the slot state afterwards.
# argv: bundle_path config_json_path
import asyncio
import json
import sys

from perch import bundle, slots, slotwrite, unpack


class FileSource:
    # a bundle source (see perch/unpack.py) over a file: never has to wait
    def __init__(self, f):
        self.readinto = f.readinto


async def main(path, cfg):
    r = unpack.Reader(cfg.get("keys"), cfg.get("allow_unsigned", False),
                      cfg.get("min_version", "0.0.0"), cfg.get("kind", "app"),
                      unpack.free_bytes())
    with open(path, "rb") as f:
        try:
            man = await r.run(FileSource(f), lambda man: slotwrite.SlotSink())
            res = {"ok": True, "version": man["version"]}
        except bundle.BundleError as e:
            res = {"ok": False, "error": str(e)}
    st = slots.load()
    res["state"] = st
    res["active_version"] = slots.slot_version(st["active"])
    res["done"] = r.done
    print(json.dumps(res))


class NoRun:
    # "park": no 2 KB run for the compressed block (unpack_body._take parks it on flash)
    @staticmethod
    def BytesIO(n):
        raise MemoryError


with open(sys.argv[2]) as _f:
    _cfg = json.load(_f)
if _cfg.get("park"):
    from perch import unpack_body  # kept loaded: lazy() then does not drop it

    unpack_body.io = NoRun
asyncio.run(main(sys.argv[1], _cfg))
