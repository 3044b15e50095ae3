"""``xaisweep report``, paper table: configurations x metrics, mean ± sd over seeds, best in bold,
paired significance against the best row, as Markdown and LaTeX.

* Rows: configurations, i.e. the active search parameters without ``seed`` (one row per
  ``regularizer`` value in a methods sweep). Columns: metrics (the sweep's metric and every
  ``test/*`` metric all runs logged, or the ones asked for) and, when the search space has a
  ``dataset`` parameter, one column group per dataset. Early-stopped runs are left out (their
  values are not final).
* Cell: mean ± sample sd over the seeds of the configuration (``n`` seeds in the row label).
* Best: the highest mean, or the lowest for metrics whose name says lower is better
  (:data:`LOWER_IS_BETTER`: ``loss``, ``deletion``, ``sufficiency``, ``step_time``); in bold.
* Significance: each other row is compared with the best row of the column on the seeds both
  share (paired by seed value) with a two-sided paired t-test (``scipy.stats.ttest_rel``; with
  every difference equal, p = 0 if it is non-zero, else 1); the p-values of a column are
  Holm-corrected (family = the column's comparisons). A row whose corrected p >= alpha is a
  tie with the best and is marked ``†``; fewer than 2 shared seeds cannot be tested: ``?``.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

LOWER_IS_BETTER = ("loss", "deletion", "sufficiency", "step_time")
ALPHA = 0.05
TIE, UNTESTED = "†", "?"


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (step-down, monotone, capped at 1)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def paired_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided paired t-test p-value of ``a`` vs ``b`` (same length >= 2)."""
    diffs = [x - y for x, y in zip(a, b)]
    if len(set(diffs)) == 1:
        return 0.0 if diffs[0] != 0 else 1.0
    from scipy.stats import ttest_rel

    return float(ttest_rel(a, b).pvalue)


def lower_is_better(metric: str) -> bool:
    return any(word in metric for word in LOWER_IS_BETTER)


@dataclass(frozen=True)
class Cell:
    mean: float
    sd: float  # nan for one seed
    n: int
    best: bool = False
    mark: str = ""  # TIE, UNTESTED or ""
    p_holm: Optional[float] = None


@dataclass(frozen=True)
class PaperTable:
    rows: tuple[str, ...]
    columns: tuple[tuple[Optional[str], str], ...]  # (dataset or None, metric)
    cells: dict[tuple[str, tuple[Optional[str], str]], Cell]
    alpha: float = ALPHA

    def markdown(self) -> str:
        head = ["configuration"] + [_col_name(c) for c in self.columns]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            lines.append("| " + " | ".join([r] + [self._cell(r, c, "**{}**") for c in self.columns]) + " |")
        lines.append("")
        lines.append(f"Mean ± sd over seeds; best in bold; {TIE}: not significantly different from the best "
                     f"(paired t-test over shared seeds, Holm-corrected, α = {self.alpha}); {UNTESTED}: fewer "
                     f"than 2 shared seeds.")
        return "\n".join(lines) + "\n"

    def latex(self) -> str:
        cols = "l" + "r" * len(self.columns)
        head = " & ".join(["configuration"] + [_tex(_col_name(c)) for c in self.columns])
        body = [" & ".join([_tex(r)] + [self._cell(r, c, "\\textbf{{{}}}", tex=True) for c in self.columns])
                + " \\\\" for r in self.rows]
        note = (f"Mean $\\pm$ sd over seeds; best in bold; $^\\dagger$ not significantly different from the best "
                f"(paired $t$-test over shared seeds, Holm-corrected, $\\alpha = {self.alpha}$).")
        return "\n".join(["\\begin{tabular}{" + cols + "}", "\\toprule", head + " \\\\", "\\midrule", *body,
                          "\\bottomrule", "\\end{tabular}", "% " + note]) + "\n"

    def _cell(self, row: str, col, bold: str, tex: bool = False) -> str:
        cell = self.cells.get((row, col))
        if cell is None:
            return "–"
        pm = " $\\pm$ " if tex else " ± "
        text = f"{cell.mean:.4f}" + ("" if cell.n < 2 else f"{pm}{cell.sd:.4f}")
        if cell.best:
            text = bold.format(text)
        if cell.mark == TIE:
            text += "$^\\dagger$" if tex else TIE
        elif cell.mark == UNTESTED:
            text += UNTESTED
        return text


def _col_name(col: tuple[Optional[str], str]) -> str:
    dataset, metric = col
    return metric if dataset is None else f"{dataset}: {metric}"


def _tex(text: str) -> str:
    return text.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("&", "\\&").replace("%", "\\%")


def build_table(
    runs: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    *,
    dataset_key: Optional[str] = None,
    alpha: float = ALPHA,
) -> PaperTable:
    """The paper table of ``runs``: each ``{"config": label, "seed": s, "dataset": d, "metrics": {...}}``.

    Args:
        runs: one entry per finished run (``dataset`` only read when ``dataset_key`` is set).
        metrics: the metric columns, in order.
        dataset_key: the name of the dataset axis (columns per dataset), or ``None``.
        alpha: significance level after the Holm correction.
    """
    datasets: list[Optional[str]] = [None]
    if dataset_key is not None:
        datasets = sorted({str(r["dataset"]) for r in runs})
    columns = tuple((d, m) for d in datasets for m in metrics)
    labels = list(dict.fromkeys(r["config"] for r in runs))
    cells: dict[tuple[str, tuple[Optional[str], str]], Cell] = {}
    for col in columns:
        dataset, metric = col
        per_row: dict[str, dict[Any, float]] = {}
        for r in runs:
            if dataset is not None and str(r["dataset"]) != dataset:
                continue
            v = r["metrics"].get(metric)
            if v is None or not math.isfinite(v):
                continue
            per_row.setdefault(r["config"], {})[r["seed"]] = float(v)
        if not per_row:
            continue
        stats = {lab: (statistics.fmean(v.values()), statistics.stdev(v.values()) if len(v) > 1 else float("nan"),
                       len(v)) for lab, v in per_row.items()}
        low = lower_is_better(metric)
        best = (min if low else max)(stats, key=lambda lab: stats[lab][0])
        others = [lab for lab in stats if lab != best]
        tested, pvals = [], []
        for lab in others:
            shared = sorted(set(per_row[lab]) & set(per_row[best]), key=str)
            if len(shared) >= 2:
                tested.append(lab)
                pvals.append(paired_p([per_row[best][s] for s in shared], [per_row[lab][s] for s in shared]))
        adjusted = dict(zip(tested, holm(pvals)))
        for lab, (mean, sd, n) in stats.items():
            if lab == best:
                cells[(lab, col)] = Cell(mean, sd, n, best=True)
            elif lab in adjusted:
                p = adjusted[lab]
                cells[(lab, col)] = Cell(mean, sd, n, mark=TIE if p >= alpha else "", p_holm=p)
            else:
                cells[(lab, col)] = Cell(mean, sd, n, mark=UNTESTED)
    return PaperTable(rows=tuple(labels), columns=columns, cells=cells, alpha=alpha)


__all__ = ["PaperTable", "Cell", "build_table", "holm", "paired_p", "lower_is_better"]
