"""Fetch the pinned device dependencies (deps.lock) into .deps/.

Each artefact is downloaded from PyPI through its simple index (pypi-simple), which also
serves sdists that pip refuses, and is checked against the SHA-256 in the lock file before
anything is extracted.
"""

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "deps.lock"
DEPS = REPO / ".deps"


class DepsError(Exception):
    pass


def _download(project, filename):
    import requests
    from pypi_simple import PyPISimple

    with PyPISimple() as client:
        page = client.get_project_page(project)
    for pkg in page.packages:
        if pkg.filename == filename:
            r = requests.get(pkg.url, timeout=60)
            r.raise_for_status()
            return r.content
    raise DepsError("%s: %s is not on the index" % (project, filename))


def _members(blob, filename):
    if filename.endswith(".whl"):
        z = zipfile.ZipFile(io.BytesIO(blob))
        return {n: (lambda n=n: z.read(n)) for n in z.namelist()}
    t = tarfile.open(fileobj=io.BytesIO(blob))
    return {m.name: (lambda m=m: t.extractfile(m).read()) for m in t.getmembers() if m.isfile()}


def _stamp(name, spec):
    return DEPS / (".%s-%s.sha256" % (name, spec["version"]))


def fetch(force=False):
    """Fetch and verify every locked dependency; return the .deps folder."""
    lock = json.loads(LOCK.read_text())
    for name, spec in lock.items():
        stamp = _stamp(name, spec)
        if not force and stamp.exists() and stamp.read_text() == spec["sha256"]:
            continue
        blob = _download(name, spec["filename"])
        digest = hashlib.sha256(blob).hexdigest()
        if digest != spec["sha256"]:
            raise DepsError("%s: SHA-256 mismatch, got %s, locked %s"
                            % (spec["filename"], digest, spec["sha256"]))
        members = _members(blob, spec["filename"])
        for src, dst in spec["files"].items():
            if src not in members:
                raise DepsError("%s: %s missing from %s" % (name, src, spec["filename"]))
            out = DEPS / dst
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(members[src]())
        stamp.write_text(spec["sha256"])
        print("fetched %s %s (sha256 ok)" % (name, spec["version"]))
    return DEPS
