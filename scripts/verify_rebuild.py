"""Rebuild shipped artifacts from a clean checkout of the commit each records, and compare.

    python scripts/verify_rebuild.py NAME [NAME ...] [--record]

An artifact whose commit is marked ``+dirty`` was built with uncommitted changes, so that commit
alone may not rebuild it. For each NAME (a manifest entry): a detached worktree of the recorded
commit, mark dropped, in a temporary folder, with this checkout's ``pretrained/`` copied in as the
inputs; the entry's own command run there; the file it ships compared with the shipped one,
weights tensor by tensor for a checkpoint, array by array for a map or a study.

Floating-point results depend on more than the code: the torch version, the instruction set of
the CPU kernels, the number of threads, the device. Where an entry records what it was trained
with (``trained_with``), a rebuild that differs is reported beside this machine's.

With ``--record``, an artifact rebuilt exactly has the mark dropped from its commit and a
``rebuilt`` note added (the command, the commit, the comparison); one that differs is reported
and left as it is. Run one at a time: each rebuild is a training run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import checkpoint, pretrained  # noqa: E402
from core.train import arithmetic  # noqa: E402


def same_contents(shipped: Path, rebuilt: Path) -> tuple[bool, str]:
    """Whether two artifacts hold the same numbers, and how far apart they are where they do not."""
    if shipped.suffix == ".pt":
        a, b = checkpoint.read(shipped)["state_dict"], checkpoint.read(rebuilt)["state_dict"]
        pairs = {k: (a[k].double().numpy(), b[k].double().numpy()) for k in a if k in b}
    else:
        with np.load(shipped) as x, np.load(rebuilt) as y:
            a, b = dict(x), dict(y)
        pairs = {k: (a[k], b[k]) for k in a if k in b}
    if set(a) != set(b):
        return False, f"different contents: {sorted(set(a) ^ set(b))}"
    if any(x.shape != y.shape for x, y in pairs.values()):
        return False, "different shapes"
    numeric = {k: (x, y) for k, (x, y) in pairs.items() if np.issubdtype(x.dtype, np.number)}
    differ = [k for k, (x, y) in pairs.items() if not np.array_equal(x, y)]
    if not differ:
        return True, f"identical ({len(pairs)} arrays)"
    gap = max(float(np.abs(x.astype(float) - y.astype(float)).max()) for k, (x, y) in numeric.items() if k in differ)
    return False, f"{len(differ)} of {len(pairs)} arrays differ, by up to {gap:.3g}"


def rebuild(entry: dict) -> tuple[bool, str, str]:
    commit = entry["commit"].removesuffix("+dirty")
    with tempfile.TemporaryDirectory(prefix="rebuild-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            shutil.rmtree(tree / "pretrained", ignore_errors=True)  # absent at commits before it was tracked
            shutil.copytree(ROOT / "pretrained", tree / "pretrained")
            command = entry["command"].replace("python ", f"{sys.executable} ")
            env = {**os.environ, "LATENT_LAB_RUNS": str(Path(tmp) / "runs")}
            env.pop("LATENT_LAB_PRETRAINED", None)
            done = subprocess.run(command, shell=True, cwd=tree, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                return False, f"the command failed: {done.stderr.strip().splitlines()[-1:]}", commit
            same, how = same_contents(ROOT / entry["path"], tree / entry["path"])
            if not same and entry.get("trained_with"):
                rebuilt_with = arithmetic(entry["trained_with"][-1]["device"])  # as the rebuild's training saw it
                how += f"; trained with {entry['trained_with']}, rebuilt with {rebuilt_with}"
            return same, how, commit
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="+", metavar="NAME")
    parser.add_argument("--record", action="store_true", help="drop the +dirty mark of each exact rebuild")
    args = parser.parse_args()
    entries = {e["name"]: e for e in pretrained.read_manifest()}
    unknown = [n for n in args.names if n not in entries]
    if unknown:
        sys.exit(f"not in the manifest: {', '.join(unknown)}")
    for name in args.names:
        same, how, commit = rebuild(entries[name])
        print(f"{name}: {'rebuilt exactly' if same else 'NOT rebuilt exactly'} at {commit[:9]}: {how}", flush=True)
        if same and args.record:
            manifest = pretrained.read_manifest()
            for e in manifest:
                if e["name"] == name:
                    e["commit"] = commit
                    e["rebuilt"] = {"command": f"python scripts/verify_rebuild.py {name}", "commit": commit,
                                    "comparison": how}
            pretrained.write_manifest(manifest)


if __name__ == "__main__":
    main()
