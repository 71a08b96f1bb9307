"""`make bench`: measure Perch on virtual boards and print one table against SPEC §9.

Every bench/bench_*.py module has rows(bench) -> [(figure, value, unit, budget, baseline)].
`bench` (a Bench) starts virtual boards on free ports and cleans them up; boards are the
same as the tests use (tests/conftest.py), so the figures are for the code under test.
"""

import importlib
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO / "tests"), str(REPO / "tools")]

import build  # noqa: E402
from conftest import Board, write_world  # noqa: E402


class Bench:
    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="perch-bench-"))
        self.bundle = build.build(out_dir=self.tmp / "dist")
        self.boards = []
        # The compiled app tree, for baselines that import microdot or umqtt from it.
        build.install_root(self.tmp / "tree", self.bundle)
        self.app_dir = self.tmp / "tree" / "app" / "a"

    def board(self, heap="512k", env=None, config=None, world=None, start=True, **world_kw):
        root = self.tmp / ("board%d" % len(self.boards))
        root.mkdir()
        build.install_root(root, self.bundle, seed_config=config)
        if world is None:
            world = write_world(self.tmp / ("world%d.json" % len(self.boards)), **world_kw)
        b = Board(root, world=world, heap=heap, env=env)
        self.boards.append(b)
        return b.start() if start else b

    def close(self):
        for b in self.boards:
            b.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def fmt(v):
    if isinstance(v, float):
        return "%.3g" % v if abs(v) < 1000 else "%.0f" % v
    return str(v)


def main(argv):
    only = argv[1:]
    names = sorted(p.stem for p in BENCH.glob("bench_*.py"))
    if only:
        names = [n for n in names if any(o in n for o in only)]
    bench = Bench()
    rows = []
    t0 = time.monotonic()
    try:
        for name in names:
            try:
                rows += importlib.import_module(name).rows(bench)
            except Exception as e:
                traceback.print_exc()
                rows.append((name, "FAILED: %s" % e, "", "", ""))
    finally:
        bench.close()
    head = ("figure", "value", "budget", "baseline (same run)")
    table = [(f, ("%s %s" % (fmt(v), u)).strip(), b, base) for f, v, u, b, base in rows]
    widths = [max(len(str(r[i])) for r in table + [head]) for i in range(4)]
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, head))
    print()
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in table:
        print("  ".join("%-*s" % (w, c) for w, c in zip(widths, r)))
    print("\n(%d figures in %.0f s, on a 64-bit Unix port: objects are ~1.6-2x their ESP32 size)"
          % (len(rows), time.monotonic() - t0))


if __name__ == "__main__":
    main(sys.argv)
