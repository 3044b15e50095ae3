"""Artifacts of a ``faithfulness`` evaluation: the methods x metrics table (``faithfulness_table.md`` /
``.csv``), the feature-map heatmaps and the weak learner's validation-loss curves."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from trainables.artifacts import token_heatmap_html
from trainables.faithfulness.metrics import PER_METHOD


def write_tables(table: dict[str, dict[str, float]], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    cols = [c for c in PER_METHOD if any(c in row for row in table.values())]
    md = ["| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    csv = ["method," + ",".join(cols)]
    for method, row in table.items():
        vals = [f"{row[c]:.3f}" if c in row else "" for c in cols]
        md.append(f"| {method} | " + " | ".join(v or "-" for v in vals) + " |")
        csv.append(method + "," + ",".join(vals))
    (out_dir / "faithfulness_table.md").write_text("\n".join(md) + "\n")
    (out_dir / "faithfulness_table.csv").write_text("\n".join(csv) + "\n")
    return [out_dir / "faithfulness_table.md", out_dir / "faithfulness_table.csv"]


def write_heatmaps(id_tokens: Callable[[Sequence[int]], list[str]], maps, out_dir: Path, n: int = 4) -> Path:
    """The first ``n`` test examples' feature maps per method; ``id_tokens(ids) -> tokens`` names the ids."""
    rows = []
    for method, pairs in maps.items():
        batch, scores = pairs[0]
        for i in range(min(n, batch.size)):
            length = int(batch.attention_mask[i].sum())
            tokens = id_tokens(batch.input_ids[i, :length].tolist())
            rows.append((tokens, scores[i, :length].tolist(), f"{method}: example {i}"))
    path = out_dir / "attribution_heatmaps.html"
    path.write_text(token_heatmap_html(rows, "feature maps per attribution method (test examples)"))
    return path


def plot_curves(curves: dict[str, list[float]], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    for name, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss")
    ax.set_title("weak learner")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path
