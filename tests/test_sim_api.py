"""The virtual board's hardware modules expose nothing the ESP32 port lacks.

Device code is type-checked against the ESP32 stubs, but it runs against tools/sim/board in
every test; a public name that only the simulator has would let device code come to rely on
it. So every public name of network/machine/esp32 here (and every public attribute of their
public classes), as MicroPython itself sees it, must exist in
micropython-esp32-esp32-generic-stubs. Private helpers start with "_".
"""

from __future__ import annotations

import ast
import json
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest

from sim_helpers import BOARD, board_env, run_mp

MODULES = ("network", "machine", "esp32")
PRESENT = [m for m in MODULES if (BOARD / f"{m}.py").exists()]
# Parts of a module that it loads on use (to cost the heap as little as the chip's C module):
# their public names are the module's API too, and are checked with it.
PARTS = {"network": ("_netops", "_netconst"), "machine": ("_machine_io", "_rtc"),
         "esp32": ("_flash",)}

# Runs under MicroPython: the module's public surface as the runtime sees it. Imported modules
# and micropython.const are how a module is written, not what it offers.
INTROSPECT = """
import json, micropython
m = __import__(%r)
out = {}
for k in dir(m):
    if k.startswith('_'):
        continue
    v = getattr(m, k)
    if type(v).__name__ == 'module' or v is micropython.const:
        continue
    out[k] = [a for a in dir(v) if not a.startswith('_')] if isinstance(v, type) else None
print(json.dumps(out))
"""


def find_stub(module: str) -> Path:
    dist = metadata.distribution("micropython-esp32-esp32-generic-stubs")
    for f in dist.files or ():
        if f.as_posix() == f"{module}.pyi":
            return Path(f.locate())
    raise AssertionError(f"{module}.pyi not in micropython-esp32-esp32-generic-stubs")


def _names(body: list[ast.stmt]) -> dict[str, ast.ClassDef | None]:
    out: dict[str, ast.ClassDef | None] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = None
        elif isinstance(node, ast.ClassDef):
            out[node.name] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = None
    return out


@cache
def stub_api(module: str) -> dict[str, frozenset[str] | None]:
    """name -> members (for classes, including those of base classes in the same stub)."""
    top = _names(ast.parse(find_stub(module).read_text()).body)

    def members(cls: ast.ClassDef, seen: frozenset[str] = frozenset()) -> set[str]:
        got = set(_names(cls.body))
        for base in cls.bases:
            if isinstance(base, ast.Name) and base.id not in seen:
                parent = top.get(base.id)
                if parent is not None:
                    got |= members(parent, seen | {cls.name})
        return got

    return {k: (frozenset(members(v)) if v is not None else None) for k, v in top.items()}


def _introspect(module: str, board_dir: Path, cwd: Path) -> dict[str, list[str] | None]:
    r = run_mp(INTROSPECT % module, cwd, board_env(board_dir=board_dir))
    assert r.returncode == 0, f"importing {module} on the board failed:\n{r.stdout}{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def board_api(module: str, board_dir: Path, cwd: Path) -> dict[str, list[str] | None]:
    """Public names of the module and of the parts it loads on use, as one API."""
    api = _introspect(module, board_dir, cwd)
    for part in PARTS.get(module, ()):
        if not (board_dir / f"{part}.py").exists():
            continue
        for name, attrs in _introspect(part, board_dir, cwd).items():
            mine = api.get(name)
            if isinstance(attrs, list) and isinstance(mine, list):
                api[name] = sorted(set(mine) | set(attrs))
            elif name not in api:
                api[name] = attrs
    return api


def extra_names(module: str, board_dir: Path, cwd: Path) -> list[str]:
    """Public names the board module has and the ESP32 port does not."""
    stub = stub_api(module)
    extra = []
    for name, attrs in board_api(module, board_dir, cwd).items():
        if name not in stub:
            extra.append(f"{module}.{name}")
            continue
        if attrs is None:
            continue
        known = stub[name]
        if known is None:
            extra.append(f"{module}.{name} (a class here, not in the ESP32 port)")
            continue
        extra += [f"{module}.{name}.{a}" for a in attrs if a not in known]
    return sorted(extra)


def test_board_has_hardware_modules():
    assert PRESENT, "tools/sim/board has none of network.py, machine.py, esp32.py"
    assert "network" in PRESENT and "machine" in PRESENT


@pytest.mark.parametrize("module", PRESENT)
def test_no_simulator_only_api(module, tmp_path):
    assert extra_names(module, BOARD, tmp_path) == []


@pytest.mark.parametrize("module", PRESENT)
def test_board_module_is_the_one_checked(module, tmp_path):
    # the check above must look at our file, not at a built-in of the Unix port
    code = "import %s; print(%s.__file__)" % (module, module)
    r = run_mp(code, tmp_path, board_env())
    assert r.stdout.strip() == str(BOARD / f"{module}.py")


# Runs under MicroPython: each public name of a part must be reachable through its module
# (classes of a part through the module's class of that name, on an instance or the class).
REACHABLE = """
import json, micropython
m = __import__(%r)
p = __import__(%r)
bad = []
for k in dir(p):
    v = getattr(p, k)
    if k.startswith('_') or type(v).__name__ == 'module' or v is micropython.const:
        continue
    if not hasattr(m, k):
        bad.append(k)
    elif isinstance(getattr(p, k), type) and getattr(p, k) is not getattr(m, k):
        mc = getattr(m, k)
        inst = mc(0) if k == 'WLAN' else mc(1) if k == 'Partition' else None
        for a in dir(getattr(p, k)):
            if not a.startswith('_') and not hasattr(mc, a) and not hasattr(inst, a):
                bad.append(k + '.' + a)
print(json.dumps(bad))
"""


@pytest.mark.parametrize("module,part", [(m, p) for m in PRESENT for p in PARTS.get(m, ())])
def test_parts_are_reachable_through_their_module(module, part, tmp_path):
    if not (BOARD / f"{part}.py").exists():
        pytest.skip(f"no {part}.py")
    r = run_mp(REACHABLE % (module, part), tmp_path, board_env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []


def test_checker_catches_extra_names(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "network.py").write_text(
        "import time\n"
        "from micropython import const\n"
        "STA_IF = const(0)\n"
        "_private = 1\n"
        "def hostname(name=None):\n    pass\n"
        "def simulator_only():\n    pass\n"
        "class WLAN:\n"
        "    IF_STA = 0\n"
        "    def active(self, on=None):\n        pass\n"
        "    def teleport(self):\n        pass\n"
        "    def _helper(self):\n        pass\n"
        "class Sneaky:\n    pass\n"
    )
    assert extra_names("network", fake, tmp_path) == [
        "network.Sneaky",
        "network.WLAN.teleport",
        "network.simulator_only",
    ]


def test_stub_parser_sees_inherited_members():
    api = stub_api("machine")
    assert "feed" in api["WDT"] and "scan" in api["SoftI2C"] and "reset" in api
    assert api["reset"] is None
