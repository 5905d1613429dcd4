"""LatentIndex: faiss equals brute force, add/remove without retraining, IVF recall, atomic and
checked save/load; the shared exemplar store; upload sessions leave shared state alone."""

import numpy as np
import pytest
import torch

from core import latent_index, models, uploads
from core.latent_index import IndexFileError, LatentIndex
from core.store import ExemplarStore


def clustered(n: int, d: int = 8, centres: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(0, 3, (centres, d))
    return (c[rng.integers(centres, size=n)] + rng.normal(0, 1, (n, d))).astype(np.float32)


def brute(base: np.ndarray, query: np.ndarray, k: int):
    d = torch.cdist(torch.from_numpy(query).double(), torch.from_numpy(base).double())
    dist, idx = d.topk(k, largest=False)
    return dist.numpy(), idx.numpy()


def test_search_equals_brute_force_cdist():
    codes, query = clustered(500), clustered(20, seed=1)
    labels = np.arange(500) % 10
    index = LatentIndex.from_codes(codes, labels)
    assert index.kind == "flat" and len(index) == 500
    dist, ids, found_labels = index.search(query, 7)
    want_dist, want_ids = brute(codes, query, 7)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(found_labels, labels[want_ids])


def test_add_and_remove_keep_ids_stable_and_match_brute_force():
    codes = clustered(300)
    index = LatentIndex.from_codes(codes[:200], np.zeros(200))
    new_ids = index.add(codes[200:], np.ones(100))
    np.testing.assert_array_equal(new_ids, np.arange(200, 300))
    gone = np.arange(0, 300, 3)
    assert index.remove(gone) == len(gone)
    kept = np.setdiff1d(np.arange(300), gone)
    query = clustered(10, seed=2)
    _, ids, labels = index.search(query, 5)
    _, want = brute(codes[kept], query, 5)
    np.testing.assert_array_equal(ids, kept[want])  # ids are the original ones, not renumbered
    np.testing.assert_array_equal(labels, (kept[want] >= 200).astype(int))
    assert index.add(codes[:1], [7])[0] == 300  # a removed id is never handed out again


def test_bad_changes_leave_the_index_unchanged():
    index = LatentIndex.from_codes(clustered(50), np.zeros(50))
    before = (index.codes.copy(), index.ids.copy(), index.next_id, index._index.ntotal)
    for codes, labels in [(np.zeros((2, 3)), [0, 0]), (np.full((1, 8), np.nan), [0]),
                          (np.zeros((2, 8)), [0])]:
        with pytest.raises(ValueError):
            index.add(codes, labels)
    with pytest.raises(ValueError, match="no exemplar with id 999"):
        index.remove([3, 999])
    after = (index.codes, index.ids, index.next_id, index._index.ntotal)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]


def test_fewer_exemplars_than_k_pads_with_minus_one():
    index = LatentIndex.from_codes(clustered(3), [1, 2, 3])
    dist, ids, labels = index.search(clustered(1, seed=3), 5)
    assert (ids[0, 3:] == -1).all() and (labels[0, 3:] == -1).all() and np.isinf(dist[0, 3:]).all()


def test_approximate_index_above_the_threshold_with_measured_recall(monkeypatch):
    monkeypatch.setattr(latent_index, "APPROXIMATE_ABOVE", 2000)
    codes = clustered(5000, d=16)
    index = LatentIndex.from_codes(codes, np.zeros(5000))
    assert index.kind == "ivf"
    assert index.recall is not None and index.recall >= 0.9, index.recall
    assert index.recall == pytest.approx(index.measure_recall())
    assert LatentIndex.from_codes(codes[:2000], np.zeros(2000)).kind == "flat"
    index.remove([0, 1, 2])  # IVF supports removal too
    index.add(codes[:2], [1, 1])
    _, ids, _ = index.search(codes[:1], 1)
    assert ids[0, 0] == 5000  # the re-added copy of exemplar 0


def test_save_load_round_trip_is_atomic(tmp_path):
    index = LatentIndex.from_codes(clustered(100), np.arange(100) % 10)
    index.remove([5, 6])
    index.add(clustered(3, seed=4), [1, 2, 3])
    path = tmp_path / "index.npz"
    index.save(path, meta={"model": "test"})
    index.save(path)  # overwriting goes through a temporary file too
    assert [p.name for p in tmp_path.iterdir()] == ["index.npz"]  # no temporary file left over
    loaded = LatentIndex.load(path)
    query = clustered(5, seed=5)
    for a, b in zip(index.search(query, 4), loaded.search(query, 4)):
        np.testing.assert_array_equal(a, b)
    assert loaded.next_id == index.next_id and loaded.add(clustered(1), [0])[0] == index.next_id


def test_a_damaged_or_inconsistent_file_is_refused(tmp_path):
    index = LatentIndex.from_codes(clustered(100), np.zeros(100))
    path = tmp_path / "index.npz"
    with pytest.raises(IndexFileError, match="no saved index"):
        LatentIndex.load(path)
    index.save(path)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(IndexFileError, match="damaged|inconsistent"):
        LatentIndex.load(path)
    # A file whose arrays disagree with their checksum (e.g. edited by hand).
    index.labels[0] = 5
    index.save(path)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["labels"][0] = 0
    np.savez(path, **arrays)
    with pytest.raises(IndexFileError, match="checksum"):
        LatentIndex.load(path)


# -- sessions over a shared model and index -----------------------------------------------------


@pytest.fixture(scope="module")
def shared():
    torch.manual_seed(0)
    model = models.build("exemplar_vae", {"latent_dim": 8, "hidden_dim": 32})
    model.eval()
    model.set_exemplars(torch.rand(64, 1, 28, 28))
    codes = model.encode(torch.rand(100, 1, 28, 28))
    return model, LatentIndex.from_codes(codes, np.arange(100) % 10)


def digit_image(seed: int) -> torch.Tensor:
    return torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_sessions_see_only_their_own_uploads_and_leave_shared_state_alone(shared):
    model, base = shared
    means, n_base, next_id = model.exemplar_means, len(base), base.next_id
    a, b = uploads.UploadSession(model, base), uploads.UploadSession(model, base)
    up = a.add(digit_image(1), "mine.png", label=3)
    assert up.id >= next_id
    found = a.neighbors(up.code, 5)
    assert found[0]["upload"] and found[0]["index"] == up.id and found[0]["distance"] == pytest.approx(0, abs=1e-3)
    assert not any(f["upload"] for f in b.neighbors(up.code, 5))  # b never sees a's upload
    assert a.neighbors(up.code, 5, exclude=up.id)[0]["index"] != up.id
    # The shared model and index are untouched: same tensor, same exemplars, same index.
    assert model.exemplar_means is means and len(means) == 64
    assert len(base) == n_base and base.next_id == next_id
    # The session's prior includes its upload, and can be drawn from it alone.
    assert len(a.exemplar_means()) == 65 and len(b.exemplar_means()) == 64
    g = torch.Generator().manual_seed(0)
    assert a.sample_prior(4, generator=g).shape == (4, 1, 28, 28)
    assert a.sample_prior(4, generator=g, own_only=True).shape == (4, 1, 28, 28)
    with pytest.raises(ValueError):
        b.sample_prior(4, own_only=True)
    assert a.around(up.id, 16).shape == (16, 1, 28, 28)
    assert a.reconstruction(up.id).shape == (1, 28, 28)
    a.remove(up.id)
    assert not a.uploads and len(a.own) == 0
    with pytest.raises(ValueError):
        a.remove(up.id)


def test_saving_to_the_store_shares_with_new_sessions_only(shared, tmp_path):
    model, base = shared
    store = ExemplarStore(tmp_path)
    a = uploads.UploadSession(model, base)
    a.add(digit_image(1), "one.png", 1)
    a.add(digit_image(2), "two.png", 2)
    uids = a.save_to_store(store, "mnist")
    assert len(uids) == 2 and a.save_to_store(store, "mnist") == []
    assert sorted(store.load("mnist")["uids"].tolist()) == sorted(uids)
    c = uploads.UploadSession(model, base)
    assert c.join_store(store, "mnist") == 2
    assert sorted(u.name for u in c.uploads.values()) == ["one.png", "two.png"]
    assert all(u.shared for u in c.uploads.values())
