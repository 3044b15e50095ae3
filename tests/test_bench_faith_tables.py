"""The verdict and table logic of tests/benchmarks/bench_faithfulness_datasets.py on made-up numbers
with a known answer (no training, no data)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        import bench_faithfulness_datasets as mod
        yield mod
    finally:
        sys.path.remove(str(BENCH))


def _rows_from_paper(bench, seeds=(0, 1, 2), shift=0.0):
    """Per-trial rows whose tables are the paper's numbers (seed s adds s * shift to every value)."""
    rows = []
    for ds in bench.DATASETS:
        for s in seeds:
            table = {m: {} for m in list(bench.METHODS) + list(bench.BASELINES)}
            for metric in ("deletion", "weak_f1", "shuffle_tvd"):
                for m in table:
                    if m in bench.METHODS or metric == "weak_f1":
                        table[m][metric] = bench.paper_value(metric, ds, m) + s * shift
            for m in bench.METHODS:
                table[m]["weak_f1_abs"] = table[m]["weak_f1"]
                table[m]["comprehensiveness"] = table[m]["sufficiency"] = 0.0
            rows.append({"dataset": ds, "seed": s, "test_accuracy": bench.paper_value("accuracy", ds),
                         "test_f1": bench.paper_value("f1", ds), "table": table, "agreement": {}})
    return rows


def test_kendall_tau_known_answers(bench):
    assert bench.kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert bench.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert bench.kendall_tau([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)  # one discordant pair of six
    # tau-b with a tie, as scipy computes it: (C - D) / sqrt((n0 - n1)(n0 - n2))
    scipy_stats = pytest.importorskip("scipy.stats")
    a, b = [1, 2, 2, 3, 5], [2, 1, 3, 3, 4]
    assert bench.kendall_tau(a, b) == pytest.approx(scipy_stats.kendalltau(a, b).statistic)


def test_verdicts_on_the_papers_own_numbers(bench):
    """Fed the paper's tables as 'ours', the verdicts must restate the paper: deletion 16/16 pairs (IG and IxG
    lower than Saliency and Attention everywhere), weak learner 15/16 (SST: IxG .667 < Saliency .669), and the
    deletion ranking agreement 4/6 (by hand: the six dataset pairs have taus 2/3, 1, 2/3, 2/3, 1/3, 2/3)."""
    summary = bench.summarise(_rows_from_paper(bench))
    v = bench.verdicts(summary)
    won = {name: sum(o["ours"]["pairs_won"] for o in rec["ordering"].values()) for name, rec in v.items()}
    assert won == {"deletion": 48, "weak_f1/signed": 45, "weak_f1/absolute": 45, "shuffle_tvd": 48}
    assert v["weak_f1/signed"]["ordering"]["sst"]["ours"]["pairs_won"] == 9  # 3 of 4 pairs x 3 seeds
    assert v["weak_f1/signed"]["ordering"]["sst"]["paper_pairs_won"] == 3
    assert v["deletion"]["cross_ours"]["mean_tau"] == pytest.approx(4 / 6)
    assert v["deletion"]["cross_paper"]["mean_tau"] == pytest.approx(4 / 6)
    # IMDB deletion: IG .095 is the best (lowest); the per-method range of Saliency is .677 - .508
    assert v["deletion"]["cross_ours"]["per_method"]["saliency"]["range"] == pytest.approx(0.677 - 0.508)
    assert v["deletion"]["cross_ours"]["good_top2_everywhere"]


def test_seed_noise_enters_the_range_test_and_markdown(bench):
    """sd over seeds 0, 0.1, 0.2 shifts is 0.1: a range < 0.3 is not 'more than 3 seed sd'."""
    rows = _rows_from_paper(bench, shift=0.1)
    summary = bench.summarise(rows)
    assert summary["sst"]["deletion"]["saliency"]["sd"] == pytest.approx(0.1)
    v = bench.verdicts(summary)
    text = bench.format_verdicts(v, "deletion")
    # ranges over datasets: Saliency .169, IG .258, IxG .296, Attention .165 -> none exceeds 3 x 0.1
    assert "by more than 3 seed sd for 0/4 methods" in text
    cfg = {d: {**bench.COMMON, **bench.SIZING[d], "eval_examples": 10, "weak_train_examples": 10} for d in bench.DATASETS}
    stats = {d: {"train": 100, "valid": 10, "test": 50, "eval_examples": 10, "len_mean": 20.0, "len_median": 19,
                 "len_p90": 31, "truncated_frac": 0.0, "label1_frac": 0.5} for d in bench.DATASETS}
    result = bench.build_result(rows, {"date": "2026-01-01", "machine": {}, "trial_configs": cfg,
                                       "data_stats": stats, "wall_s": 60.0})
    files = bench.markdown_files(result)
    assert set(files) == set(bench.MD_FILES)
    # the paper's IMDB IG deletion value and our mean +- sd (0.095 + 0.1 mean shift) both appear in Table 3
    assert "| Integrated Grad | 0.195 ± 0.100 | 0.095 |" in files["deletion"]
    assert "Integrated Grad (absolute)" in files["weak_f1"]
