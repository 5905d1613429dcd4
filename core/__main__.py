"""Latent Lab's command line: ``python -m core {train,evaluate,ship,augment,map,neighbour-table,list,neighbors,store,bench} ...``.

A user's mistake (a bad argument, a missing dataset or artifact) prints one plain line on stderr
and exits with status 2; it never prints a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

USER_ERROR = 2
NEIGHBOUR_TABLE_K = 8  # what the map page shows for a click

# Evaluations that are not one model's checkpoint: name -> "module:function". The function takes
# (dataset, *, limit, progress) and returns a dict of metrics.
STUDIES: dict[str, str] = {
    "drs": "core.drs:study",
    "drs-toy": "core.drs_toy:study",
}


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the whole usage block first
        self.exit(USER_ERROR, f"error: {message} (see: python -m core {self._sub_name()}--help)\n")

    def _sub_name(self) -> str:
        parts = self.prog.split()[3:]  # "python -m core train" -> ["train"]
        return "".join(p + " " for p in parts)


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def device(text: str) -> str:
    """cpu, cuda or cuda:N: the devices a training step can run on here."""
    from core import names

    try:
        names.cuda_index(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def setting(text: str) -> tuple[str, object]:
    """KEY=VALUE, the value read as JSON where it is JSON (128, 0.5, true, [0.14,1] for a pair of
    numbers), as text otherwise. Whether the value fits the field is the model's to say."""
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with a config field as KEY, got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    numbers = isinstance(value, list) and len(value) > 0 and all(
        isinstance(item, (int, float)) and not isinstance(item, bool) for item in value)
    if isinstance(value, dict) or value is None or (isinstance(value, list) and not numbers):
        raise argparse.ArgumentTypeError(
            f"expected a number, true/false, a word or a list of numbers for {key}, got {raw!r}")
    return key, value


def make_parser() -> Parser:
    from core import names  # not core.data or core.models: they import torch, which takes seconds

    parser = Parser(prog="python -m core", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model (resumable; checkpoints every epoch)")
    p.add_argument("model", choices=names.MODEL_FAMILIES)
    p.add_argument("--dataset", choices=names.DATASETS, default=names.DEFAULT_DATASET)
    p.add_argument("--epochs", type=positive, default=100, help="total epochs of the run (default 100)")
    p.add_argument("--resume", action="store_true", help="continue runs/MODEL-DATASET/checkpoint.pt")
    p.add_argument("--limit", type=positive, help="train on the first N training images only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", type=device,
                   help="where the training steps run: cpu (a new run's default), or cuda for the GON, "
                        "VAE and SwAV families; a resumed run keeps its own")
    p.add_argument("--set", action="append", default=[], type=setting, metavar="KEY=VALUE",
                   help="a field of the model's config for a new run, e.g. --set latent_dim=128, "
                        "or a pair as a list: --set 'global_scale=[0.14,1]' (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("evaluate", help="measure a model (or a study such as drs) on the test split")
    p.add_argument("model", choices=list(names.MODEL_FAMILIES) + list(STUDIES))
    p.add_argument("--dataset", choices=names.DATASETS, default=names.DEFAULT_DATASET)
    p.add_argument("--limit", type=positive,
                   help="the first N test images only (for drs and drs-toy: N samples per set)")
    p.add_argument("--samples", type=positive, default=1000, help="importance samples per image for the NLL")
    p.add_argument("--checkpoint", type=Path, help="evaluate this checkpoint instead of the shipped one")
    p.add_argument("--record", action="store_true",
                   help="studies that make arrays for a page (drs-toy): ship them to pretrained/; "
                        "models: replace the shipped checkpoint's metrics with this measurement")
    p.add_argument("--gamma-percentile", type=float, metavar="P",
                   help="drs: γ as the P-th percentile of F (0 to 100); by default the one that "
                        "gives the lowest FD against the GAN's training images")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("ship", help="evaluate a finished run and record it in pretrained/")
    p.add_argument("model", choices=names.MODEL_FAMILIES)
    p.add_argument("--dataset", choices=names.DATASETS, default=names.DEFAULT_DATASET)
    p.add_argument("--samples", type=positive, default=1000, help="importance samples per image for the NLL")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("augment", help="classifier test error with and without exemplar augmentation")
    p.add_argument("--dataset", choices=names.DATASETS, default=names.DEFAULT_DATASET)
    p.add_argument("--epochs", type=positive, default=100, help="classifier epochs (default 100, as the paper's code)")
    p.add_argument("--seeds", type=positive, default=3, help="pairs of classifiers, seeds 0..N-1 (default 3)")
    p.add_argument("--record", action="store_true", help="store the result in the manifest entry")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("map", help="fit the 2-D UMAP of every image's latent code and ship it")
    p.add_argument("model", choices=names.MODEL_FAMILIES)
    p.add_argument("--dataset", choices=names.DATASETS, default=names.DEFAULT_DATASET)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("neighbour-table", help="every image's nearest images under a model, shipped for the map's clicks")
    p.add_argument("model", choices=names.MODEL_FAMILIES)
    p.add_argument("--dataset", choices=names.DATASETS, default=names.DEFAULT_DATASET)
    p.add_argument("-k", type=positive, default=NEIGHBOUR_TABLE_K, help="neighbours per image")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("neighbors", help="nearest exemplars of your own images (one JSON line each)")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="PNG, JPEG, WebP, BMP or GIF files")
    p.add_argument("--model", choices=["vae", "exemplar_vae"], default="exemplar_vae")
    p.add_argument("--dataset", choices=names.DATASETS, default=names.DEFAULT_DATASET)
    p.add_argument("-k", type=positive, default=10, help="neighbours per image (default 10)")
    p.add_argument("--json", action="store_true", help="JSON lines (the only output format)")

    p = sub.add_parser("bench", help="measure where people wait (map, uploads, kNN, pages, memory)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("store", help="the shared store of users' saved uploads (for a maintainer)")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    v = verbs.add_parser("list", help="every saved row: id, dataset, label, time, session, name")
    v.add_argument("--dataset", choices=names.DATASETS)
    v.add_argument("--json", action="store_true", help="one JSON object per row")
    v = verbs.add_parser("remove", help="delete rows by id (see: store list)")
    v.add_argument("ids", nargs="+", type=positive, metavar="ID")
    v = verbs.add_parser("export", help="write the rows to an .npz that import reads")
    v.add_argument("file", type=Path, metavar="FILE")
    v.add_argument("--dataset", choices=names.DATASETS)
    v = verbs.add_parser("import", help="add the rows of an exported .npz that are not stored yet")
    v.add_argument("file", type=Path, metavar="FILE")

    p = sub.add_parser("list", help="what pretrained/ ships, with its metrics")
    p.add_argument("--json", action="store_true", help="print the manifest entries as JSON")
    p.add_argument("--markdown", action="store_true", help="print the README's table of models")
    return parser


def cmd_train(args) -> None:
    from core import train

    config = train.TrainConfig(epochs=args.epochs, limit=args.limit, seed=args.seed, device=args.device or "cpu",
                               model=dict(args.set))
    path = train.train(args.model, args.dataset, config, resume=args.resume, progress=not args.quiet,
                       device_given=args.device is not None)
    print(f"checkpoint: {path}")


def measure(model, dataset: str, *, limit: int | None, samples: int, progress: bool) -> dict:
    from core import evaluate

    return evaluate.measure(model, dataset, limit=limit, samples=samples, progress=progress)


def has_own_measure(model) -> bool:
    from core import evaluate

    return evaluate.has_own_measure(model)


def cmd_evaluate(args) -> None:
    from core import checkpoint, pretrained

    if args.model in STUDIES:
        import importlib
        import inspect

        module, function = STUDIES[args.model].split(":")
        study = getattr(importlib.import_module(module), function)
        options = {"record": True} if args.record else {}
        if args.gamma_percentile is not None:
            if args.model != "drs":
                raise ValueError(f"--gamma-percentile applies to drs, not {args.model}")
            options["percentile"] = args.gamma_percentile
        if args.checkpoint:
            raise ValueError(f"--checkpoint does not apply to {args.model}: it uses the shipped models")
        if args.record and "record" not in inspect.signature(study).parameters:
            raise ValueError(f"--record does not apply to {args.model}")
        metrics = study(args.dataset, limit=args.limit, progress=not args.quiet, **options)
        print_metrics({"study": args.model, **metrics}, args.json)
        return
    if args.gamma_percentile is not None:
        raise ValueError(f"--gamma-percentile applies to drs, not {args.model}")
    if args.record and (args.checkpoint or args.limit):
        raise ValueError("--record measures the shipped checkpoint in full: drop --checkpoint and --limit")
    if args.checkpoint:
        model, payload = checkpoint.load(args.checkpoint)
        if payload["family"] != args.model:
            raise ValueError(f"{args.checkpoint} holds a {payload['family']}, not a {args.model}")
    else:
        model, _ = pretrained.load(args.model, args.dataset)
    from core import train

    commit = train.git_commit()  # the code that measures: edits made while it runs are not in it
    metrics = measure(model, args.dataset, limit=args.limit, samples=args.samples, progress=not args.quiet)
    if args.record:
        command = f"python -m core evaluate {args.model} --dataset {args.dataset} --record"
        if not has_own_measure(model):
            command += f" --samples {args.samples}"
        pretrained.remeasure(args.model, args.dataset, metrics, command, commit)
    print_metrics({"model": args.model, **metrics}, args.json)


def print_metrics(metrics: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(metrics))
        return
    for key, value in metrics.items():
        print(f"{key:>24}  {value}")


def cmd_ship(args) -> None:
    from core import checkpoint, pretrained, train

    run = train.run_dir(args.model, args.dataset) / "checkpoint.pt"
    model, payload = checkpoint.load(run)
    metrics = measure(model, args.dataset, limit=None, samples=args.samples, progress=not args.quiet)
    train_config = train.TrainConfig(**payload["train_config"])
    command = (train.rebuild_command(args.model, args.dataset, train_config, payload["epoch"])
               + f" && python -m core ship {args.model} --dataset {args.dataset}")
    if not has_own_measure(model):
        command += f" --samples {args.samples}"
    entry = pretrained.ship(run, metrics, command)
    headline = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()
                         if isinstance(v, float) and k in {c[1] for c in pretrained.columns_of(args.model)})
    print(f"shipped {entry['path']} ({entry['bytes']} bytes; {headline})")


def cmd_augment(args) -> None:
    from core import augment, pretrained, train

    model, entry = pretrained.load("exemplar_vae", args.dataset)
    # Finished arms are kept, the augmented ones per generator checkpoint, so an interrupted run
    # goes on where it was.
    result = augment.compare_seeds(args.dataset, model, augment.AugmentConfig(epochs=args.epochs), args.seeds,
                                   progress=not args.quiet, done=train.RUNS_DIR / f"augment-{args.dataset}",
                                   generator_name=entry["sha256"][:16])
    result["command"] = f"python -m core augment --dataset {args.dataset} --epochs {args.epochs} --seeds {args.seeds}"
    if args.record:
        result["commit"] = train.git_commit()
        pretrained.record("exemplar_vae", args.dataset, "augmentation", result)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"test error over {args.seeds} seed(s): {result['baseline_test_error']:.2%} without, "
              f"{result['augmented_test_error']:.2%} with exemplar augmentation "
              f"(change {result['change']:+.2%} ± {result['change_std']:.2%})")


def cmd_map(args) -> None:
    from core import pretrained, projection, train

    model, _ = pretrained.load(args.model, args.dataset)
    commit = train.git_commit()  # before the long build, as in cmd_evaluate
    arrays, metrics = projection.build_map(model, args.dataset, seed=args.seed, progress=not args.quiet)
    command = f"python -m core map {args.model} --dataset {args.dataset}"
    command += f" --seed {args.seed}" * (args.seed != 0)
    entry = pretrained.ship_map(args.model, args.dataset, arrays, metrics, command, commit)
    print(f"shipped {entry['path']} ({metrics['points']} points, trustworthiness "
          f"{metrics['trustworthiness']:.3f}, 2-D 5-NN accuracy {metrics['knn_accuracy_2d']:.3f})")


def cmd_neighbour_table(args) -> None:
    from core import pretrained, projection, train

    model, _ = pretrained.load(args.model, args.dataset)
    if not hasattr(model, "encode"):
        raise ValueError(f"{args.model} has no latent codes to search; "
                         "a neighbour table needs a model with a map (vae, exemplar_vae, gon, swav)")
    commit = train.git_commit()
    codes = projection.encode_all(model, args.dataset, progress=not args.quiet)
    table = projection.neighbour_table(codes, args.k, progress=not args.quiet)
    command = f"python -m core neighbour-table {args.model} --dataset {args.dataset}"
    command += f" -k {args.k}" * (args.k != NEIGHBOUR_TABLE_K)
    entry = pretrained.ship_arrays("knn", args.model, args.dataset, table, {"points": len(codes), "k": args.k},
                                   command, commit, checkpoint_sha256=pretrained.find(args.model, args.dataset)["sha256"])
    print(f"shipped {entry['path']} ({len(codes):,} images × {args.k} neighbours)")


def cmd_bench(args) -> None:
    from core import bench

    result = bench.run(progress=not args.quiet)
    if args.json:
        print(json.dumps(result))
        return
    print(f"machine: {result['machine']}")
    print(bench.table(result))
    for key in (k for k in result if k.startswith("error_")):
        print(f"not measured ({key[6:]}): {result[key]}")


def cmd_list(args) -> None:
    from core import pretrained

    entries = pretrained.read_manifest()
    if args.json:
        print(json.dumps(entries, indent=2))
        return
    if args.markdown:
        print(pretrained.markdown_table(entries))
        return
    if not entries:
        print("nothing shipped yet: pretrained/manifest.json lists no artifacts")
        return
    headline_metrics = {"checkpoint": ("nll", "elbo", "knn_accuracy", "accuracy", "fd_gan", "fd_drs",
                                       "recon_mse", "ae_recon_mse"),
                        "map": ("trustworthiness", "knn_accuracy_2d", "points"),
                        "knn": ("points", "k"),
                        "study": ("hq_gan", "hq_drs", "modes_gan", "modes_drs")}
    damaged = 0
    for e in entries:
        m = e["metrics"]
        headline = ", ".join(f"{k} {m[k]:.4g}" for k in headline_metrics.get(e["kind"], ()) if k in m)
        size = f"{e['epochs']} epochs" if "epochs" in e else e["kind"]
        problem = artifact_problem(e)
        damaged += problem is not None
        print(f"{e['name']:<30} {e['path']:<42} {size:<11} {headline}" + (f"  [{problem}]" if problem else ""))
    if damaged:
        raise ValueError(f"{damaged} of {len(entries)} shipped files are missing or corrupt (marked above); "
                         "restore them with git or rebuild them with each entry's command (python -m core list --json)")


def artifact_problem(entry: dict) -> str | None:
    """None when the file matches its manifest entry; otherwise what is wrong, in two words."""
    from core import pretrained

    path = pretrained.file_of(entry)
    if not path.is_file():
        return "MISSING"
    if pretrained.sha256(path) != entry["sha256"]:
        return "CORRUPT: sha256 differs"
    return None


def cmd_neighbors(args) -> None:
    """Each image preprocessed as an upload, then its k nearest dataset exemplars; an image that
    cannot be used gets an error line, and the command fails at the end if any did. Paths are
    checked before the model loads, so a command with no usable file fails at once."""
    from core import files

    refused = {}
    for path in args.images:
        try:
            files.check(path)
        except files.FileRefused as exc:
            refused[path] = str(exc)
    if len(refused) == len(args.images):
        for path in args.images:
            print(json.dumps({"file": str(path), "error": refused[path]}), flush=True)
        raise ValueError(f"none of the {len(args.images)} files can be read as an image")

    from core import latent_index, pretrained, uploads

    model, _ = pretrained.load(args.model, args.dataset)
    index = latent_index.for_dataset(model, args.dataset)
    classes = pretrained_classes(args.dataset)
    failed = 0
    for path in args.images:
        try:
            if path in refused:
                raise files.FileRefused(refused[path])
            image = uploads.preprocess(files.read_capped(path))
            dist, ids, labels = index.search(model.encode(image[None]), min(args.k, len(index)))
            line = {"file": str(path), "neighbors": [
                {"index": int(i), "label": classes[int(lab)], "distance": round(float(d), 5)}
                for d, i, lab in zip(dist[0], ids[0], labels[0])]}
        except ValueError as exc:  # UploadError, FileRefused: the message is already plain
            failed += 1
            line = {"file": str(path), "error": str(exc)}
        print(json.dumps(line), flush=True)
    if failed:
        raise ValueError(f"{failed} of {len(args.images)} images could not be used")


def cmd_store(args) -> None:
    """The store is outside the repository ($LATENT_LAB_STORE), so this names where it is."""
    from core.store import ExemplarStore

    store = ExemplarStore()
    if args.verb == "list":
        rows = store.rows(args.dataset)
        for row in rows:
            if args.json:
                print(json.dumps(row))
            else:  # ascii(): a name with control characters or markup prints as inert text
                when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(row["created"]))
                print(f"{row['id']:>6}  {row['dataset']:<13} {row['label']:>5}  {when} UTC  "
                      f"{row['session'][:12]:<12}  {ascii(row['name'])}")
        if not args.json:
            print(f"{len(rows)} rows in {store.path}", file=sys.stderr)
    elif args.verb == "remove":
        removed = store.remove(args.ids)
        missing = len(set(args.ids)) - removed
        print(f"removed {removed} rows" + (f"; {missing} of the ids were not in the store" if missing else ""))
    elif args.verb == "export":
        print(f"exported {store.export(args.file, args.dataset)} rows to {args.file}")
    else:
        if not args.file.is_file():
            raise ValueError(f"{args.file}: no such file")
        print(f"imported {store.import_file(args.file)} new rows into {store.path}")


def pretrained_classes(dataset: str) -> tuple[str, ...]:
    from core import data

    return data.load(dataset, "train").classes


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "ship": cmd_ship, "augment": cmd_augment,
            "map": cmd_map, "list": cmd_list, "neighbors": cmd_neighbors, "bench": cmd_bench,
            "neighbour-table": cmd_neighbour_table, "store": cmd_store}


def check_paths(args) -> None:
    """Paths given on the command line, checked before anything imports torch."""
    checkpoint = getattr(args, "checkpoint", None)
    if checkpoint is not None and not checkpoint.is_file():
        raise ValueError(f"--checkpoint {checkpoint}: no such file")


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        check_paths(args)
        COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted; a training run continues with --resume", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:  # our errors subclass these and carry a plain message
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
