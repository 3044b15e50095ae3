"""Artifacts of a ``bios_debias`` trial besides the ``finetune`` ones: Fig. 7 (TPR gap vs training female
rate, ``fig7_gap_vs_female_rate.png``) and the per-profession table ``tpr_gap.csv``."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def plot_gap(table: dict[str, np.ndarray], names, r: float, path: Path, title: str) -> Path:
    """Fig. 7: per profession, training female rate (x) vs TPR gap female - male (y)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    x, y = table["female_rate"], table["gap"]
    ax.scatter(x, y)
    for i, name in enumerate(names):
        if not (np.isnan(x[i]) or np.isnan(y[i])):
            ax.annotate(str(name), (x[i], y[i]), fontsize=7)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("female rate (training)")
    ax.set_ylabel("TPR gap (female - male)")
    ax.set_title(f"{title}  r = {r:.3f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path


def write_gap_table(table: dict[str, np.ndarray], names: Sequence[str], path: Path) -> Path:
    """Per profession: training female rate, TPR of women and men, their gap and the counts (CSV)."""
    lines = ["profession,female_rate,tpr_f,tpr_m,gap,n_f,n_m"]
    for i, name in enumerate(names):
        lines.append(f"{name},{table['female_rate'][i]:.4f},{table['tpr_f'][i]:.4f},{table['tpr_m'][i]:.4f},"
                     f"{table['gap'][i]:.4f},{table['n_f'][i]},{table['n_m'][i]}")
    path.write_text("\n".join(lines) + "\n")
    return path
