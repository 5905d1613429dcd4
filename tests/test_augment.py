"""Exemplar augmentation: both classifiers train on the same schedule and split; generated images
get their source's label; seeds give a spread."""

import torch

from core import augment, data
from core.models.exemplar_vae import ExemplarVAE, ExemplarVAEConfig


def small_model() -> ExemplarVAE:
    torch.manual_seed(0)
    model = ExemplarVAE(ExemplarVAEConfig(latent_dim=4, hidden_dim=16))
    model.set_exemplars(data.load("mnist", "train").images)
    return model


def test_the_validation_sixth_is_held_out_and_fixed_by_the_seed():
    train = data.load("mnist", "train")
    config = augment.AugmentConfig()
    fit, validation = augment.split(train, config)
    assert len(validation) == round(len(train) / 6) and len(fit) + len(validation) == len(train)
    assert not set(fit.tolist()) & set(validation.tolist())
    again, _ = augment.split(train, config)
    other, _ = augment.split(train, augment.AugmentConfig(seed=1))
    assert torch.equal(fit, again) and not torch.equal(fit, other)


def test_baseline_and_augmented_classifiers_both_learn(monkeypatch):
    model = small_model()
    calls = []
    original = model.generate_from

    def counting(images, per_image, generator=None):
        calls.append((len(images), per_image))
        return original(images, per_image, generator)

    monkeypatch.setattr(model, "generate_from", counting)
    config = augment.AugmentConfig(epochs=2, hidden=64)
    result = augment.compare("mnist", model, config, progress=False)
    assert 0.0 <= result["augmented_test_error"] <= 1.0
    assert result["baseline_test_error"] < 0.5  # a 784-64-64-10 MLP learns MNIST in two epochs
    assert [p["epoch"] for p in result["baseline_curve"]] == [1, 2]
    assert result["baseline_curve"][-1]["test_error"] == result["baseline_test_error"]  # the last epoch
    fit_images = 4000 - round(4000 / 6)
    batches = -(-fit_images // 100)
    training_calls = calls[: 2 * batches]
    assert all(c[1] == 1 for c in training_calls)  # one generated image per real one
    assert sum(c[0] for c in training_calls) == 2 * fit_images  # only the images it trains on
    # Judged by the shipped classifier: it reads real digits well, an untrained model's samples not.
    agreement = result["label_agreement"]
    assert agreement["error_real"] < 0.1 < agreement["error_generated"] <= 1


def test_seeds_report_each_arm_and_the_paired_change_with_spread():
    result = augment.compare_seeds("mnist", small_model(), augment.AugmentConfig(epochs=1, hidden=32), 2,
                                   progress=False)
    runs = result["runs"]
    assert [r["config"]["seed"] for r in runs] == [0, 1]
    changes = [r["augmented_test_error"] - r["baseline_test_error"] for r in runs]
    assert abs(result["change"] - sum(changes) / 2) < 1e-12
    assert abs(result["change_std"] - abs(changes[0] - changes[1]) / 2 ** 0.5) < 1e-12
    assert result["baseline_test_error_std"] >= 0 and "seed" not in result["config"]


def test_finished_arms_are_read_back_not_rerun(tmp_path, monkeypatch):
    model, config = small_model(), augment.AugmentConfig(epochs=1, hidden=16)
    first = augment.compare_seeds("mnist", model, config, 1, progress=False, done=tmp_path, generator_name="first")
    assert (tmp_path / "baseline" / "seed-0.json").exists() and (tmp_path / "first" / "seed-0.json").exists()
    trained = []
    original = augment.train_classifier

    def counting(dataset, config, generator_model=None, progress=True):
        trained.append("augmented" if generator_model is not None else "baseline")
        return original(dataset, config, generator_model, progress)

    monkeypatch.setattr(augment, "train_classifier", counting)
    again = augment.compare_seeds("mnist", model, config, 1, progress=False, done=tmp_path, generator_name="first")
    assert trained == [] and again["runs"][0]["baseline_curve"] == first["runs"][0]["baseline_curve"]
    # Another generator trains only its own arm: the baseline never read the first one.
    augment.compare_seeds("mnist", model, config, 1, progress=False, done=tmp_path, generator_name="second")
    assert trained == ["augmented"]
    # Another config is another run: the saved seed does not stand in for it.
    other = augment.compare_seeds("mnist", model, augment.AugmentConfig(epochs=1, hidden=8), 1,
                                  progress=False, done=tmp_path, generator_name="first")
    assert other["config"]["hidden"] == 8 and trained == ["augmented", "baseline", "augmented"]


def minus(text: str) -> str:
    return text.replace("-", "−")


def seed_row(run: dict) -> str:
    """docs/reproductions.md's row for one recorded seed pair."""
    change = 100 * (run["augmented_test_error"] - run["baseline_test_error"])
    agreement = run["label_agreement"]
    return minus(f"| {run['config']['seed']} | {run['baseline_test_error']:.2%} | "
                 f"{run['augmented_test_error']:.2%} | {change:+.2f} | "
                 f"{agreement['error_generated']:.1%} | {agreement['error_real']:.1%} |")


def recorded_studies() -> list[dict]:
    """Every recorded augmentation study: the shipped generator's, once measured, and the one of
    the generator it replaced, kept in experiments/."""
    import json

    from core import pretrained
    from core.paths import ROOT

    shipped = pretrained.find("exemplar_vae", "fashion-mnist").get("augmentation")
    earlier = json.loads((ROOT / "experiments" / "exemplar_vae" / "augmentation-50-epoch-model.json").read_text())
    return [record for record in (shipped, earlier) if record]


def test_docs_quote_the_recorded_seeds():
    from core.paths import ROOT

    doc = (ROOT / "docs" / "reproductions.md").read_text()
    for record in recorded_studies():
        assert record["seeds"] == len(record["runs"]) >= 3
        for run in record["runs"]:
            assert seed_row(run) in doc
        mean = minus(f"| mean ± sd | {record['baseline_test_error']:.2%} ± {100 * record['baseline_test_error_std']:.2f} | "
                     f"{record['augmented_test_error']:.2%} ± {100 * record['augmented_test_error_std']:.2f} | "
                     f"{100 * record['change']:+.2f} ± {100 * record['change_std']:.2f} |")
        assert mean in doc
