import pytest
import torch

from core import neighbors


def test_faiss_search_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    base, query = torch.randn(500, 16, generator=g), torch.randn(40, 16, generator=g)
    dist, idx = neighbors.search(base, query, k=7)
    expected = torch.cdist(query, base).topk(7, largest=False)
    assert torch.equal(idx, expected.indices)
    torch.testing.assert_close(dist, expected.values.pow(2), rtol=1e-4, atol=1e-4)


def test_knn_accuracy_on_separable_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    labels = torch.arange(2).repeat_interleave(50)
    points = centres[labels] + 0.1 * torch.randn(100, 2, generator=g)
    assert neighbors.knn_accuracy(points, labels, points + 0.01, labels, k=5) == 1.0
    assert neighbors.knn_accuracy(points, labels, points, 1 - labels, k=5) == 0.0


def test_k_out_of_range_is_refused():
    with pytest.raises(ValueError, match="k must be between 1 and 3"):
        neighbors.search(torch.zeros(3, 2), torch.zeros(1, 2), k=4)
