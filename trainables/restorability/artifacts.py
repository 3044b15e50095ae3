"""Artifacts of a ``restorability`` trial: the histograms of Figs. 3/4 (``fig3_p_original.png``,
``fig4_p_max.png``), the table (``restorability_table.md`` / ``.csv``), the values and the config."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping

import numpy as np

from trainables.restorability.config import RestorabilityTrialConfig
from trainables.restorability.metrics import QUANTITIES, STATS, seconds_metric, stat_metric


def plot_histograms(values: Mapping[str, np.ndarray], path: Path, title: str, xlabel: str) -> Path:
    """One panel per method: relative frequency of the values in 20 bins over [0, 1] (Figs. 3-6 style)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(values)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows))
    FigureCanvasAgg(fig)
    bins = np.linspace(0, 1, 21)
    for i, (name, v) in enumerate(values.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.hist(np.asarray(v), bins=bins, weights=np.full(len(v), 1.0 / max(1, len(v))), color="C0")
        ax.set_title(f"{name} (mean {np.mean(v):.3f})", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("relative frequency", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path


def write_outputs(arrays, metrics, cfg: RestorabilityTrialConfig, out: Path) -> list[Path]:
    files = [plot_histograms({m: d["p_original"] for m, d in arrays.items()}, out / "fig3_p_original.png",
                             "probability of the original token at the cancelled position", "p(original)"),
             plot_histograms({m: d["p_max"] for m, d in arrays.items()}, out / "fig4_p_max.png",
                             "maximum probability at the cancelled position", "max p")]
    head = ["method", "p_orig mean", "p_orig median", "p_orig >0.5", "p_max mean", "p_max median", "p_max >0.5",
            "seconds"]
    md = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    csv = [",".join(head)]
    for m in arrays:
        row = [metrics[stat_metric(q, s, m)] for q in QUANTITIES for s in STATS]
        row.append(metrics[seconds_metric(m)])
        md.append(f"| {m} | " + " | ".join(f"{x:.3f}" for x in row[:-1]) + f" | {row[-1]:.1f} |")
        csv.append(m + "," + ",".join(f"{x:.6f}" for x in row))
    (out / "restorability_table.md").write_text("\n".join(md) + "\n")
    (out / "restorability_table.csv").write_text("\n".join(csv) + "\n")
    np.savez_compressed(out / "restorability_values.npz",
                        **{f"{m}__{q}": v for m, d in arrays.items() for q, v in d.items()})
    (out / "config.yaml").write_text("\n".join(f"{k}: {v}" for k, v in dataclasses.asdict(cfg).items()) + "\n")
    return files + [out / "restorability_table.md", out / "restorability_table.csv",
                    out / "restorability_values.npz", out / "config.yaml"]
