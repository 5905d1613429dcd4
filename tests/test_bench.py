"""The benchmark's parts run and report numbers with their budgets (speed itself is not asserted:
budgets are checked by reading `python -m core bench`, never by timed tests)."""

import math

from core import bench


def test_map_bench_builds_the_full_map_and_a_gallery():
    result = bench.bench_map(repeats=1)
    assert result["map_points"] == 70_000
    assert result["map_figure_ms"] > 0 and result["selection_gallery_ms"] > 0


def test_table_lists_every_budgeted_figure_with_its_ratio():
    result = {"map_figure_ms": 250.0, "knn_query_ms": 1.0, "knn_bruteforce_ms": 9.0, "cold_start_s": None,
              "page_home_ms": 12.0, "train_vae_images_per_s": 1000.0}
    text = bench.table(result)
    assert "| map figure, 70k points (ms) | 250 | 500.0 | 0.50 |  |  |" in text
    assert "| kNN query, faiss, 70k (ms) | 1 | 2.0 | 0.50 | 9 | 0.11 |" in text
    assert "| cold start (s) | n/a |" in text
    assert "page_home_ms" in text and "train_vae_images_per_s" in text


def test_median_of_a_known_function_is_positive_and_finite():
    ms = bench.median_ms(lambda: sum(range(1000)), 5)
    assert ms > 0 and math.isfinite(ms)


def test_store_and_limits_bench_reports_each_figure_with_its_budget():
    from core import bench_uploads

    result = bench_uploads.bench_store_and_limits(repeats=1)
    assert result["store_rows"] == 10_000
    assert result["store_join_ms"] > 0 and result["store_join_encoding_ms"] > 0
    assert result["upload_worst_case_bytes"] < 100_000 and result["upload_worst_case_ms"] > 0
    assert 0 < result["cli_argument_error_s"] and result["cli_argument_error_budget_s"] == 1.0
