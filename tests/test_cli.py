"""`python -m core` as a user runs it: JSON on stdout, one plain line on stderr for mistakes."""

import json

import pytest

from conftest import run_cli


@pytest.mark.parametrize("args, message", [
    (["train", "nosuchmodel"], "invalid choice: 'nosuchmodel'"),
    (["train", "vae", "--epochs", "zero"], "expected a whole number"),
    (["evaluate", "vae", "--limit", "0"], "at least 1"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["evaluate", "vae", "--dataset", "mnist", "--checkpoint", "no/such/file.pt"], "no/such/file.pt is missing"),
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


def test_readme_table_is_the_manifest():
    # The README's numbers must be what `python -m core list --markdown` prints, no hand edits.
    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- models:start -->\n")[1].split("\n<!-- models:end -->")[0]
    result = run_cli("list", "--markdown")
    assert result.returncode == 0, result.stderr
    assert table.strip() == result.stdout.strip()
