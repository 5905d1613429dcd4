"""`python -m core` as a user runs it: JSON on stdout, one plain line on stderr for mistakes."""

import json
import os
from pathlib import Path

import pytest

from conftest import run_cli


@pytest.mark.parametrize("args, message", [
    (["train", "nosuchmodel"], "invalid choice: 'nosuchmodel'"),
    (["train", "vae", "--epochs", "zero"], "expected a whole number"),
    (["evaluate", "vae", "--limit", "0"], "at least 1"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["evaluate", "vae", "--dataset", "mnist", "--checkpoint", "no/such/file.pt"], "--checkpoint no/such/file.pt: no such file"),
    (["neighbour-table", "classifier", "--dataset", "mnist"], "classifier has no latent codes"),
    (["neighbour-table", "vae", "-k", "0"], "at least 1"),
])
def test_mistakes_give_one_plain_line(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_list_json_is_the_manifest():
    from core import pretrained

    result = run_cli("list", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == pretrained.read_manifest()
    plain = run_cli("list")
    assert plain.returncode == 0 and plain.stdout.strip()


def test_missing_artifact_is_a_plain_error(isolated_dirs):
    result = run_cli("evaluate", "vae", "--dataset", "mnist")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no shipped vae for mnist" in result.stderr


def test_train_resume_evaluate_ship(isolated_dirs):
    runs, shipped = isolated_dirs
    first = run_cli("train", "vae", "--dataset", "mnist", "--epochs", "1", "--limit", "300")
    assert first.returncode == 0, first.stderr
    again = run_cli("train", "vae", "--dataset", "mnist", "--epochs", "2", "--limit", "300")
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = run_cli("train", "vae", "--dataset", "mnist", "--epochs", "2", "--resume", "--quiet")
    assert resumed.returncode == 0, resumed.stderr

    from core import checkpoint

    state = checkpoint.read(runs / "vae-mnist" / "checkpoint.pt")
    assert state["epoch"] == 2 and state["step"] == 2 * 3  # 300 images in batches of 100
    assert [h["epoch"] for h in state["history"]] == [1, 2]
    assert state["train_config"]["epochs"] == 2 and state["train_config"]["limit"] == 300
    import torch

    # both pieces ran here, under one arithmetic, so the run lists one
    [trained_with] = state["trained_with"]
    assert trained_with["torch"] == str(torch.__version__) and trained_with["device"] == "cpu"
    assert trained_with["cpu_kernels"] == torch.backends.cpu.get_cpu_capability() and trained_with["threads"] >= 1

    result = run_cli("evaluate", "vae", "--dataset", "mnist", "--checkpoint",
                     str(runs / "vae-mnist" / "checkpoint.pt"), "--limit", "20", "--samples", "8", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["test_images"] == 20 and metrics["importance_samples"] == 8
    assert {"nll", "elbo", "kl", "active_units", "knn_accuracy"} <= set(metrics)
    assert metrics["nll"] > 0 and metrics["elbo"] < 0 and 0 <= metrics["knn_accuracy"] <= 1

    shipped_run = run_cli("ship", "vae", "--dataset", "mnist", "--samples", "4", "--quiet")
    assert shipped_run.returncode == 0, shipped_run.stderr
    listed = json.loads(run_cli("list", "--json").stdout)
    assert [e["name"] for e in listed] == ["vae-mnist"]
    assert listed[0]["command"] == ("python -m core train vae --dataset mnist --epochs 2 --limit 300"
                                    " && python -m core ship vae --dataset mnist --samples 4")
    assert listed[0]["metrics"]["test_images"] == 1000 and listed[0]["epochs"] == 2
    assert listed[0]["trained_with"] == state["trained_with"]


def test_a_run_lists_each_arithmetic_its_pieces_trained_under(monkeypatch):
    from core import train

    here = {"torch": "2.15.0", "cpu_kernels": "AVX512", "threads": 2, "device": "cpu"}
    monkeypatch.setattr(train, "arithmetic", lambda device: dict(here))
    assert train.arithmetic_of_run(None, "cpu") == [here]
    assert train.arithmetic_of_run({"trained_with": [here]}, "cpu") == [here]
    elsewhere = {**here, "cpu_kernels": "AVX2"}
    assert train.arithmetic_of_run({"trained_with": [elsewhere]}, "cpu") == [elsewhere, here]
    assert train.arithmetic_of_run({}, "cpu") == [here]  # a checkpoint from before it was recorded


def test_readme_table_is_the_manifest():
    # The README's numbers must be what `python -m core list --markdown` prints, no hand edits.
    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- models:start -->\n")[1].split("\n<!-- models:end -->")[0]
    result = run_cli("list", "--markdown")
    assert result.returncode == 0, result.stderr
    assert table.strip() == result.stdout.strip()


# -- fast, safe command line (issue 22, item 5) ----------------------------------------------------

TORCH_FREE_MISTAKES = [
    ["train", "nosuchmodel"],
    ["evaluate", "vae", "--dataset", "nosuch"],
    ["evaluate", "vae", "--checkpoint", "no/such/file.pt"],
    ["neighbors", "/dev/zero"],
    ["map", "vae", "--seed", "x"],
    ["train", "gon", "--set", "latent_dim"],
    ["train", "gon", "--set", "1x=2"],
    ["train", "gon", "--set", 'latent_dim=["a"]'],
    ["train", "gon", "--set", "latent_dim=[]"],
    ["train", "gon", "--set", 'latent_dim={"a":1}'],
]


def test_argument_and_path_mistakes_are_answered_before_torch_is_imported():
    """torch takes seconds to import; a mistake is answered without it."""
    probe = ("import sys; from core.__main__ import main\n"
             "def code(args):\n"
             "    try:\n"
             "        return main(args)\n"
             "    except SystemExit as exit:  # argparse's mistakes leave through SystemExit\n"
             "        return exit.code\n"
             "codes = [code(args) for args in %r]\n"
             "print(codes, 'torch' in sys.modules)" % TORCH_FREE_MISTAKES)
    import subprocess
    import sys

    from conftest import ROOT

    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == f"{[2] * len(TORCH_FREE_MISTAKES)} False", done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_a_config_setting_must_name_a_field_and_fit_its_type():
    from core import models

    assert models.build("gon", {"latent_dim": 8, "lr": 1, "learned_step": True}).config.lr == 1.0  # int for float
    for config, words in [({"latent_dim": "abc"}, "latent_dim takes a int"), ({"latent_dim": True}, "takes a int"),
                          ({"learned_step": 1}, "takes a bool"), ({"nope": 1}, "has no config field")]:
        with pytest.raises(ValueError, match=words):
            models.build("gon", config)


def test_a_pair_setting_is_a_json_list_of_its_length_and_rebuilds_quoted_for_the_shell():
    import shlex

    from core import models, train
    from core.__main__ import make_parser

    args = make_parser().parse_args(["train", "swav", "--set", "global_scale=[0.14,1]"])
    assert dict(args.set) == {"global_scale": [0.14, 1]}
    assert models.build("swav", dict(args.set)).config.global_scale == (0.14, 1.0)
    for wrong in ([0.14], [0.14, "x"], 0.5):
        with pytest.raises(ValueError, match="global_scale takes a"):
            models.build("swav", {"global_scale": wrong})
    command = train.rebuild_command("swav", "fashion-mnist", train.TrainConfig(model=dict(args.set)), 9)
    assert command.endswith(" --set 'global_scale=[0.14,1]'")
    assert shlex.split(command)[-2:] == ["--set", "global_scale=[0.14,1]"]  # what a shell hands back


def test_a_run_made_with_settings_rebuilds_with_them_and_resumes_only_with_them(isolated_dirs):
    from core import checkpoint, train

    runs, _ = isolated_dirs
    config = train.TrainConfig(epochs=1, limit=32, model={"latent_dim": 8, "learned_step": True})
    path = train.train("gon", "mnist", config, progress=False)
    model, state = checkpoint.load(path)
    assert model.config.latent_dim == 8 and model.config.learned_step
    assert train.rebuild_command("gon", "mnist", train.TrainConfig(**state["train_config"]), 1) == (
        "python -m core train gon --dataset mnist --epochs 1 --limit 32 --set latent_dim=8 --set learned_step=true")
    with pytest.raises(ValueError, match="a resumed run keeps its settings"):
        train.train("gon", "mnist", train.TrainConfig(epochs=2, model={"latent_dim": 16}), resume=True, progress=False)
    train.train("gon", "mnist", train.TrainConfig(epochs=2), resume=True, progress=False)  # no --set: its own
    assert checkpoint.load(path)[0].config.latent_dim == 8


def test_a_run_on_a_gpu_says_so_in_its_rebuild_command():
    from core import train

    config = train.TrainConfig(device="cuda", model={"hidden": 256, "layers": 4})
    assert train.rebuild_command("implicit_gon", "fashion-mnist", config, 9) == (
        "python -m core train implicit_gon --dataset fashion-mnist --epochs 9 --device cuda"
        " --set hidden=256 --set layers=4")


@pytest.mark.parametrize("model, device, words", [
    ("classifier", "cuda", "classifier trains on the CPU only"),
    ("gan", "cuda", "gan trains on the CPU only"),  # its calibration measures on the CPU
    ("gon", "tpu9", "expected cpu, cuda or cuda:N, got 'tpu9'"),  # answered by the parser
])
def test_a_device_the_family_cannot_train_on_is_one_plain_line(isolated_dirs, model, device, words):
    result = run_cli("train", model, "--dataset", "mnist", "--epochs", "1", "--limit", "32", "--device", device)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert words in result.stderr.strip().splitlines()[-1], result.stderr


def test_without_cuda_a_gpu_run_is_refused_before_any_step(isolated_dirs):
    import torch

    from core import train

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for family in ("gon", "exemplar_vae"):  # the family loop, and the VAE families' own loop
        with pytest.raises(ValueError, match="this machine has no CUDA device"):
            train.train(family, "mnist", train.TrainConfig(epochs=1, limit=32, device="cuda"), progress=False)
    assert not list(isolated_dirs[0].rglob("checkpoint.pt"))


def test_a_resumed_run_keeps_its_device_and_refuses_another(isolated_dirs):
    from core import train

    train.train("gon", "mnist", train.TrainConfig(epochs=1, limit=32, model={"width": 4}), progress=False)
    with pytest.raises(ValueError, match="was trained on cpu; a resumed run keeps its device"):
        train.train("gon", "mnist", train.TrainConfig(epochs=2, device="cuda"), resume=True, progress=False)
    # Not asked for (the CLI's --device left out): the run's own.
    path = train.train("gon", "mnist", train.TrainConfig(epochs=2), resume=True, progress=False, device_given=False)
    from core import checkpoint

    assert checkpoint.read(path)["epoch"] == 2


def test_names_without_torch_are_the_families_and_datasets_with_it():
    from core import data, models, names

    assert names.MODEL_FAMILIES == tuple(models.MODELS)
    assert data.DATASETS == names.DATASETS


def test_neighbors_reads_only_regular_files_within_the_cap(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (5 * 2**20))
    result = run_cli("neighbors", "/dev/zero", str(fifo), str(tmp_path), str(big), "missing.png", timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [json.loads(line)["error"] for line in result.stdout.splitlines()]
    assert errors[:3] == ["not a regular file (a folder, device, FIFO or socket): pass an image file"] * 3
    assert "the limit is 5 MB" in errors[3] and errors[4] == "no such file"
    assert result.stderr.strip() == "error: none of the 5 files can be read as an image"


def test_a_file_that_grows_after_its_check_is_cut_off_while_reading(tmp_path):
    from core import files

    path = tmp_path / "growing.png"
    path.write_bytes(b"x" * 100)
    files.check(path)
    path.write_bytes(b"x" * (files.MAX_UPLOAD_BYTES + 1))
    with pytest.raises(files.FileRefused, match="over the 5 MB limit"):
        files.read_capped(path)


@pytest.mark.parametrize("content, words", [
    (b"not a zip archive at all", "is corrupt or not a checkpoint"),
    ("pickle", "holds Python objects besides weights"),
])
def test_an_unreadable_checkpoint_is_one_line_without_torchs_advice(tmp_path, content, words):
    path = tmp_path / "bad.pt"
    if content == "pickle":
        import argparse

        import torch

        torch.save({"family": "vae", "x": argparse.Namespace()}, path)  # not an allowed global
    else:
        path.write_bytes(content)
    result = run_cli("evaluate", "vae", "--checkpoint", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert "weights_only" not in result.stderr


def test_list_marks_a_corrupt_or_missing_file_and_fails(isolated_dirs):
    import shutil

    from conftest import ROOT
    from core import pretrained

    _, shipped = isolated_dirs
    shipped.mkdir()
    real = json.loads((ROOT / "pretrained" / "manifest.json").read_text())["artifacts"]
    picked = [e for e in real if e["name"] in ("map-vae-mnist", "knn-vae-mnist", "map-gon-mnist")]
    for e in picked:
        shutil.copy(ROOT / e["path"], shipped / Path(e["path"]).name)
    (shipped / "map-vae-mnist.npz").write_bytes(b"damaged")
    (shipped / "map-gon-mnist.npz").unlink()
    pretrained.write_manifest(picked)
    result = run_cli("list")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert rows["map-vae-mnist"].endswith("[CORRUPT: sha256 differs]")
    assert rows["map-gon-mnist"].endswith("[MISSING]")
    assert "[" not in rows["knn-vae-mnist"]
    assert "2 of 3 shipped files are missing or corrupt" in result.stderr
