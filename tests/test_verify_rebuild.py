"""scripts/verify_rebuild.py: what counts as the same artifact."""

import importlib.util

import numpy as np
import torch

from conftest import ROOT
from core import checkpoint, models


def verify_module():
    spec = importlib.util.spec_from_file_location("verify_rebuild", ROOT / "scripts" / "verify_rebuild.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checkpoints_compare_by_weights_and_arrays_by_values(tmp_path):
    verify = verify_module()
    torch.manual_seed(0)
    net = models.build("probe", {"hidden": 8, "features": 4})
    checkpoint.save(tmp_path / "a.pt", net, dataset="mnist", step=1, epoch=1, metrics={"x": 1.0})
    checkpoint.save(tmp_path / "b.pt", net, dataset="mnist", step=1, epoch=1, metrics={"x": 2.0})
    assert verify.same_contents(tmp_path / "a.pt", tmp_path / "b.pt")[0]  # metrics aside, the same weights
    with torch.no_grad():
        net.head[1].bias[0] += 1e-3
    checkpoint.save(tmp_path / "c.pt", net, dataset="mnist", step=1, epoch=1)
    same, how = verify.same_contents(tmp_path / "a.pt", tmp_path / "c.pt")
    assert not same and "1 of" in how and "0.001" in how

    np.savez(tmp_path / "m.npz", coords=np.zeros((5, 2), np.float32), label=np.arange(5))
    np.savez(tmp_path / "n.npz", coords=np.zeros((5, 2), np.float32), label=np.arange(5))
    np.savez(tmp_path / "o.npz", coords=np.ones((5, 2), np.float32), label=np.arange(5))
    assert verify.same_contents(tmp_path / "m.npz", tmp_path / "n.npz")[0]
    assert not verify.same_contents(tmp_path / "m.npz", tmp_path / "o.npz")[0]


def test_docs_count_the_entries_still_marked_dirty():
    """docs/reproductions.md says how many manifest entries a clean tree has not rebuilt yet."""
    import json
    import re

    entries = json.loads((ROOT / "pretrained" / "manifest.json").read_text())["artifacts"]
    dirty = sum(e["commit"].endswith("+dirty") for e in entries)
    doc = " ".join((ROOT / "docs" / "reproductions.md").read_text().split())
    said = re.search(r"\((\d+) of the (\d+) entries\)", doc)
    assert said and (int(said[1]), int(said[2])) == (dirty, len(entries))


REBUILD_STATUSES = ("rebuilt exactly", "trained on a GPU", "not checked yet",
                    "trained differently by its commit")
REQUIRED_STATUSES = ("rebuilt exactly", "trained on a GPU")  # the others may be empty, so absent


def test_docs_give_every_entry_one_rebuild_status():
    """docs/reproductions.md's table says where each manifest entry stands: every entry in exactly
    one row, the first row exactly the entries whose ``rebuilt`` note records an exact rebuild, and
    the GPU row exactly the entries trained with --device cuda."""
    import json
    import re

    entries = {e["name"]: e for e in json.loads((ROOT / "pretrained" / "manifest.json").read_text())["artifacts"]}
    rows = {}
    for line in (ROOT / "docs" / "reproductions.md").read_text().splitlines():
        row = re.match(r"\| (" + "|".join(REBUILD_STATUSES) + r")[^|]*\| (.+) \|$", line)
        if row:
            rows[row[1]] = [name.strip(" `") for name in row[2].split(",")]
    assert set(REQUIRED_STATUSES) <= set(rows)
    listed = [name for names in rows.values() for name in names]
    assert sorted(listed) == sorted(entries), "each entry in exactly one row"
    assert set(rows["rebuilt exactly"]) == {n for n, e in entries.items() if "rebuilt" in e}
    assert all(entries[n]["rebuilt"]["comparison"].startswith("identical") for n in rows["rebuilt exactly"])
    assert set(rows["trained on a GPU"]) == {n for n, e in entries.items() if "--device cuda" in e["command"]}
