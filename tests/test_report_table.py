"""The report's paper table (item 11): Holm correction and the significance marks against a table
computed by hand; datasets as column groups; Markdown and LaTeX."""
from __future__ import annotations

import math

import pytest

from sweeps.results.paper_table import ALPHA, build_table, holm, paired_p

A = [0.80, 0.82, 0.84, 0.86]  # the best: mean 0.83
B = [0.70, 0.71, 0.75, 0.74]  # A - B = .10 .11 .09 .12: t = 16.27, df 3: clearly worse
C = [0.81, 0.80, 0.85, 0.84]  # A - C = -.01 .02 -.01 .02: t = 1/sqrt(3): a tie


def t3_two_sided(t: float) -> float:
    """Two-sided p of Student's t with 3 degrees of freedom, closed form (no scipy)."""
    cdf = 0.5 + (t / (math.sqrt(3) * (1 + t * t / 3)) + math.atan(t / math.sqrt(3))) / math.pi
    return 2 * (1 - cdf)


def test_holm_known_answer():
    # sorted: .005*4 = .02, .01*3 = .03, .03*2 = .06, .04*1 = .04 -> monotone .06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []


def test_paired_t_known_answer():
    assert paired_p(A, C) == pytest.approx(t3_two_sided(1 / math.sqrt(3)), abs=1e-9)  # 0.6042
    t_b = 0.105 / (math.sqrt(0.0005 / 3) / 2)
    assert paired_p(A, B) == pytest.approx(t3_two_sided(t_b), rel=1e-6)  # 0.000509
    assert paired_p([1, 2, 3], [0, 1, 2]) == 0.0 and paired_p([1, 2], [1, 2]) == 1.0


def _runs(values: dict[str, list[float]], metric="test/f1", dataset=None):
    return [{"config": lab, "seed": s, "dataset": dataset, "metrics": {metric: v}}
            for lab, vals in values.items() for s, v in enumerate(vals)]


def test_table_marks_against_a_hand_computed_table():
    table = build_table(_runs({"vanilla": B, "vat": A, "ivat": C}), ["test/f1"])
    p_b = t3_two_sided(0.105 / (math.sqrt(0.0005 / 3) / 2))
    p_c = t3_two_sided(1 / math.sqrt(3))
    col = (None, "test/f1")
    assert table.cells[("vat", col)].best
    assert table.cells[("vanilla", col)].p_holm == pytest.approx(2 * p_b, rel=1e-6)  # 0.00102 < alpha
    assert table.cells[("ivat", col)].p_holm == pytest.approx(p_c, rel=1e-6)  # max(.604, .00102)
    assert table.markdown().splitlines()[:5] == [
        "| configuration | test/f1 |",
        "|---|---|",
        "| vanilla | 0.7250 ± 0.0238 |",
        "| vat | **0.8300 ± 0.0258** |",
        "| ivat | 0.8250 ± 0.0238† |",
    ]
    tex = table.latex()
    assert "\\textbf{0.8300 $\\pm$ 0.0258}" in tex and "0.8250 $\\pm$ 0.0238$^\\dagger$" in tex
    assert "0.7250 $\\pm$ 0.0238 \\\\" in tex and "test/f1" in tex


def test_lower_is_better_untested_and_dataset_groups():
    runs = _runs({"x": [0.3, 0.4], "y": [0.1]}, metric="faith/deletion/ig", dataset="sst")
    runs += _runs({"x": [0.9, 0.8], "y": [0.5, 0.6]}, metric="faith/deletion/ig", dataset="imdb")
    table = build_table(runs, ["faith/deletion/ig"], dataset_key="dataset")
    assert table.columns == (("imdb", "faith/deletion/ig"), ("sst", "faith/deletion/ig"))
    assert table.cells[("y", ("sst", "faith/deletion/ig"))].best  # lower deletion is better
    assert table.cells[("x", ("sst", "faith/deletion/ig"))].mark == "?"  # one shared seed: untested
    assert table.cells[("y", ("imdb", "faith/deletion/ig"))].best
    assert "| x | 0.8500 ± 0.0707† | 0.3500 ± 0.0707? |" in table.markdown()  # imdb: t = 3, df 1: p = .20
    assert ALPHA == 0.05
