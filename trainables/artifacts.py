"""Trial artifacts written to a local directory (the MLflow layer uploads them)."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Mapping, Sequence

import yaml


def config_yaml(config: Mapping) -> str:
    """The YAML text of a config artifact (keys sorted)."""
    return yaml.safe_dump(dict(config), sort_keys=True)


def write_config_yaml(config: Mapping, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_yaml(config))
    return path


def plot_training_curves(history: Sequence[Mapping[str, float]], path: Path, *, keys: Sequence[str]) -> Path:
    """PNG of the given per-epoch metrics (one panel per metric).

    Drawn on a bare Agg ``Figure``: no pyplot, so no global backend switch in the
    trial's process and a lighter first import.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = [k for k in keys if any(k in h for h in history)]
    fig = Figure(figsize=(4 * max(1, len(keys)), 3))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(1, len(keys)), squeeze=False)
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    for ax, key in zip(axes[0], keys):
        ax.plot(epochs, [h.get(key, float("nan")) for h in history], marker="o")
        ax.set_title(key)
        ax.set_xlabel("epoch")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    return path


def token_heatmap_html(rows: Sequence[tuple[Sequence[str], Sequence[float], str]], title: str) -> str:
    """HTML with one line per example: tokens shaded by weight (max-normalised per line)."""
    parts = [f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>",
             f"<h3>{html.escape(title)}</h3>"]
    for tokens, weights, caption in rows:
        top = max((abs(w) for w in weights), default=0.0) or 1.0
        spans = " ".join(
            f"<span title='{w:.4f}' style='background: rgba(220,40,40,{abs(w) / top:.3f}); padding:1px'>"
            f"{html.escape(t)}</span>"
            for t, w in zip(tokens, weights)
        )
        parts.append(f"<p><small>{html.escape(caption)}</small><br>{spans}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
