"""Shipped artifacts: ``pretrained/manifest.json`` and the files it lists.

Each entry records the file's sha256 and size, its dataset, the exact command that rebuilds it,
the git commit it was built from, and its measured metrics. Loading checks the hash first, so a
missing or corrupt file is named instead of failing somewhere inside torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from core import checkpoint
from core.paths import PRETRAINED_DIR

MANIFEST = "manifest.json"


class ArtifactError(ValueError):
    """A shipped artifact is not listed, missing, or does not match its recorded hash."""


def manifest_path() -> Path:
    return PRETRAINED_DIR / MANIFEST


def read_manifest() -> list[dict[str, Any]]:
    path = manifest_path()
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text())["artifacts"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{path} is not a valid manifest: {exc}") from exc


def write_manifest(entries: list[dict[str, Any]]) -> None:
    entries = sorted(entries, key=lambda e: (e["kind"], e["model"], e["dataset"]))
    path = manifest_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"artifacts": entries}, indent=2) + "\n")


def artifact_name(model: str, dataset: str) -> str:
    return f"{model}-{dataset}"


def find(model: str, dataset: str, kind: str = "checkpoint") -> dict[str, Any]:
    """The manifest entry of ``model`` on ``dataset``: its checkpoint, or its ``map``."""
    entries = [e for e in read_manifest() if e["kind"] == kind]
    for entry in entries:
        if entry["model"] == model and entry["dataset"] == dataset:
            return entry
    shipped = ", ".join(f"{e['model']} on {e['dataset']}" for e in entries) or "nothing"
    how = {"checkpoint": f"python -m core train {model} --dataset {dataset}",
           "map": f"python -m core map {model} --dataset {dataset}",
           "study": f"python -m core evaluate {model} --record"}[kind]
    noun = {"checkpoint": model, "map": f"map of {model}", "study": f"{model} study"}[kind]
    raise ArtifactError(f"no shipped {noun} for {dataset} (shipped: {shipped}); make one with: {how}")


def file_of(entry: dict[str, Any]) -> Path:
    """Entry paths are relative to the repository (``pretrained/...``)."""
    return PRETRAINED_DIR / Path(entry["path"]).relative_to("pretrained")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(entry: dict[str, Any]) -> Path:
    path = file_of(entry)
    if not path.is_file():
        raise ArtifactError(f"{entry['path']} is missing; rebuild it with: {entry['command']}")
    if sha256(path) != entry["sha256"]:
        raise ArtifactError(f"{entry['path']} is corrupt (sha256 differs from the manifest); "
                            f"restore it with git or rebuild it with: {entry['command']}")
    return path


def load(model: str, dataset: str) -> tuple[nn.Module, dict[str, Any]]:
    """The shipped model, hash-verified and ready to use, and its manifest entry.

    An exemplar prior is built here from the training images it was trained with.
    """
    entry = find(model, dataset)
    net, _ = checkpoint.load(verify(entry))
    if hasattr(net, "prepare_prior"):
        from core import data

        net.prepare_prior(data.load(dataset, "train").images)
    return net, entry


def ship(run_checkpoint: Path, metrics: dict[str, Any], command: str) -> dict[str, Any]:
    """Copy a finished run into ``pretrained/`` (weights only) and record it in the manifest."""
    payload = checkpoint.read(run_checkpoint)
    net = checkpoint.build_model(payload, run_checkpoint)
    name = artifact_name(payload["family"], payload["dataset"])
    path = PRETRAINED_DIR / f"{name}.pt"
    history = payload.get("history", [])
    checkpoint.save(path, net, dataset=payload["dataset"], step=payload["step"],
                    epoch=payload["epoch"], metrics=metrics, history=history)
    entry = {
        "name": name,
        "kind": "checkpoint",
        "model": payload["family"],
        "dataset": payload["dataset"],
        "path": f"pretrained/{path.name}",
        "sha256": sha256(path),
        "bytes": path.stat().st_size,
        "command": command,
        "commit": payload.get("commit", "unknown"),
        **({"trained_with": payload["trained_with"]} if "trained_with" in payload else {}),
        "epochs": payload["epoch"],
        "train_seconds": round(float(payload.get("seconds", 0.0)), 1),
        "config": payload["config"],
        "metrics": metrics,
        "curve": [{k: v for k, v in h.items() if k not in ("beta", "seconds")} for h in history],
    }
    entries = [e for e in read_manifest() if e["name"] != name] + [entry]
    write_manifest(entries)
    return entry


def ship_arrays(kind: str, model: str, dataset: str, arrays: dict[str, np.ndarray],
                metrics: dict[str, Any], command: str, commit: str, **extra: Any) -> dict[str, Any]:
    """Store arrays (plain numbers, no pickle) as ``pretrained/KIND-MODEL-DATASET.npz`` and record
    them in the manifest: a map, or a study's results for a page."""
    name = f"{kind}-{artifact_name(model, dataset)}"
    path = PRETRAINED_DIR / f"{name}.npz"
    tmp = path.with_name(path.name + ".partial.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)  # atomic: a reader never sees half a file
    entry = {"name": name, "kind": kind, "model": model, "dataset": dataset,
             "path": f"pretrained/{path.name}", "sha256": sha256(path), "bytes": path.stat().st_size,
             "command": command, "commit": commit, **extra, "metrics": metrics}
    write_manifest([e for e in read_manifest() if e["name"] != name] + [entry])
    return entry


def load_arrays(kind: str, model: str, dataset: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Hash-verified arrays of a shipped map or study, and its manifest entry."""
    entry = find(model, dataset, kind=kind)
    with np.load(verify(entry), allow_pickle=False) as f:
        return {key: f[key] for key in f.files}, entry


def ship_map(model: str, dataset: str, arrays: dict[str, np.ndarray], metrics: dict[str, Any],
             command: str, commit: str) -> dict[str, Any]:
    # the map belongs to these weights: it records their hash
    return ship_arrays("map", model, dataset, arrays, metrics, command, commit,
                       checkpoint_sha256=find(model, dataset)["sha256"])


def ship_study(study: str, dataset: str, arrays: dict[str, np.ndarray], metrics: dict[str, Any],
               command: str, commit: str) -> dict[str, Any]:
    """A study's arrays (e.g. the DRS toy's point clouds) and metrics, for pages to show."""
    return ship_arrays("study", study, dataset, arrays, metrics, command, commit)


def load_study(study: str, dataset: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    return load_arrays("study", study, dataset)


def load_map(model: str, dataset: str) -> dict[str, np.ndarray]:
    """A map's arrays, hash-verified: ``coords`` (N, 2) and ``recon_error`` (N,) of every train
    then test image."""
    return load_arrays("map", model, dataset)[0]


def remeasure(model: str, dataset: str, metrics: dict[str, Any], command: str, commit: str) -> dict[str, Any]:
    """Replace a shipped checkpoint's metrics with a new measurement of the same weights (after
    the evaluation itself changed), in the file and in the manifest. Weights, history and the
    rebuild command stay; maps and neighbour tables made from these weights follow the file's new
    hash."""
    entry = find(model, dataset)
    path = verify(entry)
    net, payload = checkpoint.load(path)
    old_sha = entry["sha256"]
    checkpoint.save(path, net, dataset=payload["dataset"], step=payload["step"], epoch=payload["epoch"],
                    metrics=metrics, history=payload.get("history", []))
    entry.update(metrics=metrics, sha256=sha256(path), bytes=path.stat().st_size,
                 remeasured={"command": command, "commit": commit})
    entries = []
    for e in read_manifest():
        if e["name"] == entry["name"]:
            e = entry
        elif e.get("checkpoint_sha256") == old_sha:
            e = {**e, "checkpoint_sha256": entry["sha256"]}  # the same weights under a new hash
        entries.append(e)
    write_manifest(entries)
    return entry


def record(model: str, dataset: str, key: str, result: dict[str, Any]) -> None:
    """Attach an experiment's result to a shipped model's manifest entry."""
    entries = read_manifest()
    entry = find(model, dataset)
    entry[key] = result
    write_manifest([entry if e["name"] == entry["name"] else e for e in entries])


TABLE_COLUMNS = (  # (header, metric key, format): the VAE family's; other families set their own
    ("NLL (nats)", "nll", "{:.2f}"),
    ("ELBO", "elbo", "{:.2f}"),
    ("KL", "kl", "{:.2f}"),
    ("active units", "active_units", "{}"),
    ("5-NN accuracy", "knn_accuracy", "{:.4f}"),
    ("IS samples", "importance_samples", "{}"),
    ("test images", "test_images", "{}"),
)


def columns_of(model: str) -> tuple[tuple[str, str, str], ...]:
    from core import models

    return getattr(models.MODELS.get(model), "TABLE_COLUMNS", TABLE_COLUMNS)


def table_rows(entries: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One row per shipped model with its headline metrics, formatted for people. The entries
    should share one set of columns (see ``table_groups``)."""
    rows = []
    for e in (e for e in entries if e["kind"] == "checkpoint"):
        m = e["metrics"]
        # Minutes on 2 CPU cores, unless the rebuild command names a GPU.
        on_gpu = "--device cuda" in e.get("command", "")
        row = {"model": e["model"], "dataset": e["dataset"], "epochs": str(e["epochs"]),
               "train time": f"{e['train_seconds'] / 60:.1f} min" + (", GPU" if on_gpu else "")}
        row.update({head: "" if (value := metric(m, key)) is None else fmt.format(value)
                    for head, key, fmt in columns_of(e["model"])})
        rows.append(row)
    return rows


def metric(metrics: dict[str, Any], key: str) -> Any:
    """``metrics[key]``, where a dotted key reaches into nested results (``independent.probe.fd_change``);
    None where it is absent."""
    value: Any = metrics
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def table_groups(entries: list[dict[str, Any]]) -> list[list[dict[str, str]]]:
    """Checkpoint rows grouped by the metrics their families report, one table per group."""
    from core import models

    order = {name: i for i, name in enumerate(models.MODELS)}  # the registry's order: VAEs first
    groups: dict[tuple, list[dict[str, Any]]] = {}
    checkpoints = [e for e in entries if e["kind"] == "checkpoint"]
    for e in sorted(checkpoints, key=lambda e: (order.get(e["model"], len(order)), e["dataset"])):
        groups.setdefault(columns_of(e["model"]), []).append(e)
    return [table_rows(group) for group in groups.values()]


def markdown_table(entries: list[dict[str, Any]]) -> str:
    """The README's table of shipped models, made from the manifest and nothing else."""
    if not entries:
        return "Nothing shipped yet."
    lines = []
    for rows in table_groups(entries):
        lines += [""] * bool(lines)
        lines += ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(row.values()) + " |" for row in rows]
    augmented = [e for e in entries if "augmentation" in e]
    if augmented:
        lines += ["", "Exemplar augmentation, an MLP's test error (mean ± sd over seeds):", "",
                  "| dataset | seeds | without | with | change |",
                  "|---|---|---|---|---|"]
        for e in augmented:
            a = e["augmentation"]
            seeds = a.get("seeds", 1)
            spread = lambda key: f" ± {a[key]:.2%}" if seeds > 1 else ""  # noqa: E731
            change = a.get("change", a["augmented_test_error"] - a["baseline_test_error"])
            lines.append(f"| {e['dataset']} | {seeds} "
                         f"| {a['baseline_test_error']:.2%}{spread('baseline_test_error_std')} "
                         f"| {a['augmented_test_error']:.2%}{spread('augmented_test_error_std')} "
                         f"| {change:+.2%}{spread('change_std')} |")
    return "\n".join(lines)
