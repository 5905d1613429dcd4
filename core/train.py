"""Resumable training. A run lives in ``runs/<model>-<dataset>/checkpoint.pt`` and is saved after
every epoch, with the optimizer, RNG state and learning curve, so a long training can be done in
pieces: ``python -m core train vae --dataset fashion-mnist --epochs 50 --resume``.

The VAE family has its own loop below (KL warm-up, dynamic binarisation). Every other family
trains through ``train_family``, and for that it provides, on its model class:

- ``Config.batch_size`` (and whatever optimiser settings it needs);
- ``configure_optimizers() -> dict[str, Optimizer]`` (a GAN has two);
- ``train_step(x, y, optimizers, *, epoch) -> dict[str, float]``: one batch of images
  (B, 1, 28, 28) in [0, 1] and labels (B,); it does its own backward and steps, and returns numbers
  for the log, ``loss`` among them;
- optionally ``on_epoch_start(images)`` and ``curve_point(test: ImageDataset) -> dict[str, float]``
  (a cheap test measurement for the learning curve, after each epoch);
- optionally ``Config.holdout_fraction``: that share of the training images (the last ones) is
  kept out of training (``core.splits``).

A family listed in ``AFTER_TRAINING`` has a step that runs once its run reaches the last epoch
(a GAN's discriminator is calibrated for DRS on the held-out images) and returns numbers for the
log. That step lives above the models, since it may use other shipped models. The checkpoint keeps
the weights from before it too: a run extended with --resume continues from those, as if it had
never stopped.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from tqdm.auto import tqdm

from core import checkpoint, data, models, names
from core.paths import ROOT, RUNS_DIR
from core.splits import held_out_count

CURVE_TEST_IMAGES = 1000  # test images scored after each epoch, for the learning curve only


class RunExistsError(ValueError):
    pass


@dataclass
class TrainConfig:
    epochs: int = 100  # total epochs of the run; --resume continues up to this many
    batch_size: int = 100
    lr: float = 5e-4
    warmup_epochs: int = 10  # KL weight rises linearly from 0 to 1 (the paper uses 100 of 2000)
    seed: int = 0
    limit: int | None = None  # first N training images only (smoke tests)
    # Where the family loop runs its steps ("cpu", "cuda"). Part of the recipe: a GPU's float
    # arithmetic differs from a CPU's, so a run's rebuild command names the device it trained on.
    device: str = "cpu"
    model: dict[str, Any] = field(default_factory=dict)  # the family's config fields that differ from its defaults


def run_dir(model_name: str, dataset: str) -> Path:
    return RUNS_DIR / f"{model_name}-{dataset}"


def code_digest() -> str:
    """sha256 over core/**/*.py: ties a run to a commit where the tree travelled without its .git
    (a lent GPU machine's copy may carry a stale one)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((ROOT / "core").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def git_commit() -> str:
    """HEAD of the repository, with ``+dirty`` when tracked files outside ``pretrained/`` and
    ``runs/`` have uncommitted changes. Shipping rewrites the manifest, so a second artifact
    shipped from the same commit is still built by that commit's code."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)pretrained", ":(exclude)runs"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def arithmetic(device: str) -> dict[str, Any]:
    """What decides a run's floating-point results besides its code, data and seed: the torch
    version, the instruction set its CPU kernels dispatch to, the number of threads, the device.
    One epoch of the Exemplar VAE on the same commit and seed, on one machine, ended with four
    different losses (at the sixth significant digit) with AVX-512 or AVX2 kernels and with 1
    thread or 2 (2, 4 and 8 agreed), so a rebuild is exact only where these match
    (docs/reproductions.md)."""
    torch_device = training_device(device)
    return {"torch": str(torch.__version__), "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(), "device": str(torch_device),
            **({"gpu": torch.cuda.get_device_name(torch_device)} if torch_device.type == "cuda" else {})}


def arithmetic_of_run(state: dict[str, Any] | None, device: str) -> list[dict[str, Any]]:
    """Each distinct ``arithmetic`` a run has trained under, its pieces' in order of first use.
    Checkpoints from before this was recorded start the list with this piece's."""
    seen = list(state.get("trained_with", [])) if state else []
    here = arithmetic(device)
    return seen if here in seen else [*seen, here]


def rebuild_command(model_name: str, dataset: str, config: TrainConfig, epochs: int) -> str:
    """The one command that trains this run from scratch to ``epochs``.

    A run done in --resume pieces is the same run (the RNG state travels in the checkpoint), and
    one stopped early at epoch E is the same as one asked for E epochs (no schedule looks at the
    total).
    """
    command = f"python -m core train {model_name} --dataset {dataset} --epochs {epochs}"
    if config.limit:
        command += f" --limit {config.limit}"
    if config.seed:
        command += f" --seed {config.seed}"
    if config.device != "cpu":
        command += f" --device {config.device}"
    if config.model:
        command += " " + shlex.join(set_arguments(config.model))  # a list's brackets are quoted for the shell
    return command


def set_arguments(settings: dict[str, Any]) -> list[str]:
    """The ``--set KEY=VALUE`` arguments that give a new run these config settings, each value
    written as the CLI reads it back (JSON, except a word)."""
    arguments = []
    for key, value in sorted(settings.items()):
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        arguments += ["--set", f"{key}={text}"]
    return arguments


class Run(NamedTuple):
    model: nn.Module
    config: TrainConfig
    state: dict[str, Any] | None  # the checkpoint's contents, when resumed
    history: list[dict[str, float]]
    seconds: float
    step: int
    start_epoch: int


def start_or_resume(model_name: str, config: TrainConfig, path: Path, resume: bool, *,
                    device_given: bool = True) -> Run:
    """A fresh model seeded from ``config``, or, with ``resume``, the run saved at ``path`` with
    its curve, clock and RNG state. A resumed run keeps its own settings (limit, seed, lr, device,
    ...): only ``epochs`` may grow. ``device_given``: whether ``config.device`` was asked for, so
    that a different one is refused on resume rather than ignored."""
    if path.exists() and not resume:
        raise RunExistsError(f"{path} exists: pass --resume to continue it, or delete it to start over")
    if resume and path.exists():
        model, state = checkpoint.load(path)
        saved = TrainConfig(**{**state["train_config"], "epochs": config.epochs})
        if config.model and config.model != saved.model:
            raise ValueError(f"{path} was trained with {saved.model or 'the default config'}; a resumed run "
                             "keeps its settings: drop --set, or start a new run")
        if device_given and config.device != saved.device:
            raise ValueError(f"{path} was trained on {saved.device}; a resumed run keeps its device: "
                             f"drop --device, or start a new run")
        torch.set_rng_state(state["rng"])
        return Run(model, saved, state,
                   state["history"], state["seconds"], state["step"], state["epoch"])
    torch.manual_seed(config.seed)
    return Run(models.build(model_name, config.model), config, None, [], 0.0, 0, 0)


def train(model_name: str, dataset: str, config: TrainConfig, *, resume: bool = False,
          out: Path | None = None, progress: bool = True, device_given: bool = True) -> Path:
    """Train (or continue training) ``model_name`` on ``dataset``; returns the checkpoint path."""
    models.check_name(model_name)
    data.check_name(dataset)
    if config.device != "cpu" and not getattr(models.MODELS[model_name], "runs_on_any_device", False):
        raise ValueError(f"{model_name} trains on the CPU only (--device {config.device} was asked for)")
    path = (out or run_dir(model_name, dataset)) / "checkpoint.pt"
    if hasattr(models.MODELS[model_name], "train_step"):
        return train_family(model_name, dataset, config, path, resume=resume, progress=progress,
                            device_given=device_given)
    model, config, state, history, seconds, step, start_epoch = start_or_resume(
        model_name, config, path, resume, device_given=device_given)
    train_set = data.load(dataset, "train")
    images = train_set.images[: config.limit] if config.limit else train_set.images
    # As in train_family: weights built on the CPU, then moved; data and RNG stay on the CPU.
    device = training_device(config.device)
    model.to(device)
    curve_images = data.binarize_fixed(data.load(dataset, "test").images)[:CURVE_TEST_IMAGES].to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    if start_epoch >= config.epochs:
        print(f"{path} already has {start_epoch} epochs; ask for more with --epochs")
        return path

    commit = state["commit"] if state else git_commit()
    trained_with = arithmetic_of_run(state, config.device)
    epochs = tqdm(range(start_epoch, config.epochs), initial=start_epoch, total=config.epochs,
                  desc=f"{model_name} on {dataset}", unit="epoch", disable=not progress)
    for epoch in epochs:
        began = time.perf_counter()
        model.train()
        if hasattr(model, "on_epoch_start"):
            model.on_epoch_start(images)  # e.g. the Exemplar VAE refreshes its cache of means
        beta = min(1.0, (epoch + 1) / config.warmup_epochs) if config.warmup_epochs else 1.0
        order = torch.randperm(len(images))
        total = 0.0
        batches = tqdm(range(0, len(images), config.batch_size), leave=False, unit="batch",
                       disable=not progress)
        for start in batches:
            index = order[start : start + config.batch_size]
            x = torch.bernoulli(images[index]).to(device)  # dynamic binarisation, a fresh draw every epoch
            out = model(x, beta=beta, index=index)  # index: for the exemplar prior's leave-one-out
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            step += 1
            total += out.loss.item() * len(index)
            batches.set_postfix(loss=f"{out.loss.item():.1f}")
        seconds += time.perf_counter() - began
        model.eval()
        if hasattr(model, "prepare_prior"):
            model.prepare_prior(images)  # the exemplar prior with this epoch's encoder
        with torch.no_grad():
            test_elbo = float(model(curve_images).elbo)
        history.append({"epoch": epoch + 1, "beta": beta, "train_loss": total / len(images),
                        "test_elbo": test_elbo, "seconds": round(seconds, 1)})
        epochs.set_postfix(loss=f"{total / len(images):.1f}", test_elbo=f"{test_elbo:.1f}")
        checkpoint.save(path, model, dataset=dataset, step=step, epoch=epoch + 1,
                        metrics={"test_elbo_curve_subset": test_elbo},
                        optimizer=optimizer.state_dict(), rng=torch.get_rng_state(),
                        train_config=asdict(config), history=history, seconds=seconds,
                        commit=commit, trained_with=trained_with)
    return path


# family -> "module:function" taking (model, train_set, progress) and returning numbers for the log
AFTER_TRAINING: dict[str, str] = {"gan": "core.drs_calibration:after_training"}


def after_training_step(model):
    """The family's step after its last epoch (``AFTER_TRAINING``), or None."""
    import importlib

    target = AFTER_TRAINING.get(model.family)
    if target is None:
        return None
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def training_device(name: str) -> torch.device:
    """The device ``name`` (cpu, cuda or cuda:N), once this machine is known to have it."""
    index = names.cuda_index(name)
    if index is None:
        return torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count <= index:
        raise ValueError(f"this run trains on {name}, and this machine has "
                         f"{f'{count} CUDA device(s)' if count else 'no CUDA device'}")
    return torch.device(name)


def train_family(model_name: str, dataset: str, config: TrainConfig, path: Path, *,
                 resume: bool, progress: bool, device_given: bool = True) -> Path:
    """The loop for every family that brings its own ``train_step`` (see the module docstring)."""
    model, config, state, history, seconds, step, start_epoch = start_or_resume(
        model_name, config, path, resume, device_given=device_given)
    # Built (or loaded) on the CPU and moved: the same initial weights whatever the device. The
    # data and the RNG stay on the CPU, so the batches are the same too.
    device = training_device(config.device)
    model.to(device)
    optimizers = model.configure_optimizers()
    if state is not None:
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(state["optimizer"][name])
    # A run stopped during after_training (which follows the last epoch's checkpoint) finishes it
    # on --resume; checkpoints from before this flag existed count as finished.
    after_training = after_training_step(model)
    finished = state is None or state.get("after_training_done", True) or after_training is None
    if start_epoch >= config.epochs and finished:
        print(f"{path} already has {start_epoch} epochs; ask for more with --epochs")
        return path
    if state is not None and start_epoch < config.epochs and "weights_before_after_training" in state:
        # after_training changed the weights for use (a GAN's calibrated D); the run goes on from
        # the weights the game left, so that a run in pieces is the same as one in one go.
        model.load_state_dict(state["weights_before_after_training"])
    train_set, test_set = data.load(dataset, "train"), data.load(dataset, "test")
    images, labels = train_set.images, train_set.labels
    holdout = held_out_count(model, len(images))
    if holdout:
        images, labels = images[:-holdout], labels[:-holdout]
    if config.limit:
        images, labels = images[: config.limit], labels[: config.limit]
    batch_size = model.config.batch_size
    commit = state["commit"] if state else git_commit()
    trained_with = arithmetic_of_run(state, config.device)
    epochs = tqdm(range(start_epoch, config.epochs), initial=start_epoch, total=config.epochs,
                  desc=f"{model_name} on {dataset}", unit="epoch", disable=not progress)
    for epoch in epochs:
        began = time.perf_counter()
        model.train()
        if hasattr(model, "on_epoch_start"):
            model.on_epoch_start(images)
        order = torch.randperm(len(images))
        sums: dict[str, float] = {}
        batches = tqdm(range(0, len(images) - batch_size + 1, batch_size), leave=False,
                       unit="batch", disable=not progress)  # whole batches only: BatchNorm, Sinkhorn
        for start in batches:
            index = order[start : start + batch_size]
            stats = model.train_step(images[index].to(device), labels[index].to(device), optimizers, epoch=epoch)
            step += 1
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            batches.set_postfix(loss=f"{stats['loss']:.3f}")
        seconds += time.perf_counter() - began
        model.eval()
        point = {"epoch": epoch + 1, **{f"train_{k}" if k == "loss" else k: v / max(1, len(batches))
                                        for k, v in sums.items()}}
        if hasattr(model, "curve_point"):
            with torch.no_grad():
                point.update(model.curve_point(test_set))
        point["seconds"] = round(seconds, 1)
        history.append(point)
        epochs.set_postfix({k: f"{v:.3g}" for k, v in point.items() if k not in ("epoch", "seconds")})
        checkpoint.save(path, model, dataset=dataset, step=step, epoch=epoch + 1, metrics={},
                        optimizer={name: o.state_dict() for name, o in optimizers.items()},
                        rng=torch.get_rng_state(), train_config=asdict(config), history=history,
                        seconds=seconds, commit=commit, trained_with=trained_with,
                        after_training_done=False)
    if after_training is not None:
        began = time.perf_counter()
        trained = {name: tensor.clone() for name, tensor in model.state_dict().items()}
        # Kept with those weights: building a model there (a GAN loads the shipped classifier)
        # draws from the global RNG, and an extended run must not see that.
        rng = torch.get_rng_state()
        history[-1].update(after_training(model, train_set, progress=progress))
        seconds += time.perf_counter() - began
        history[-1]["seconds"] = round(seconds, 1)
        checkpoint.save(path, model, dataset=dataset, step=step, epoch=config.epochs, metrics={},
                        optimizer={name: o.state_dict() for name, o in optimizers.items()},
                        rng=rng, train_config=asdict(config), history=history,
                        seconds=seconds, commit=commit, trained_with=trained_with,
                        after_training_done=True,
                        weights_before_after_training=trained)
    return path
