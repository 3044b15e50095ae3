"""Artifacts of a ``finetune`` trial: config, curves, per-step noise statistics, the neighbour /
synonym table with a readable sample, Figure 2 (PCA of clean / SMART / noised vectors), weights."""
from __future__ import annotations

import csv
import dataclasses
import shutil
from pathlib import Path
from typing import Any, Optional

import torch

from trainables.artifacts import plot_training_curves, write_config_yaml
from xaicore.perturbation.noise import make_noise_regularizer
from xaicore.perturbation.smart import SmartRegularizer

#: words whose neighbour / synonym rows are written as a readable sample
SAMPLE_WORDS = ("good", "bad", "he", "she", "you", "car", "happy", "run", "said", "city")


def write_artifacts(setup: Any, history: list[dict], steps: list[dict], out_dir: Path, *,
                    final: bool = True) -> list[Path]:
    """Write the trial's artifacts into ``out_dir``; ``final=False`` (before each interim report, so a
    trial that ASHA stops keeps its curves) skips the Figure 2 PCA and the weights. ``setup``: a
    :class:`trainables.finetune.setup.FinetuneSetup`."""
    from xaicore.perturbation.neighbours import readable_sample

    cfg = setup.cfg
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [write_config_yaml({"trainable": "finetune", "config": dataclasses.asdict(cfg)}, out_dir / "config.yaml")]
    files.append(plot_training_curves(history, out_dir / "training_curves.png",
                                      keys=["train/loss", "train/reg", "valid/accuracy", "train/noise_ratio"]))
    if steps:
        path = out_dir / "step_stats.csv"
        keys = sorted({k for row in steps for k in row}, key=lambda k: (k != "step", k))
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(steps)
        files.append(path)
    for kind in ("neighbours", "synonyms"):
        if kind in setup.tables:
            table, table_path, tokens = setup.tables[kind]
            if kind == "neighbours":
                lines = readable_sample(table, tokens, SAMPLE_WORDS)
            else:
                index = {t: i for i, t in enumerate(tokens)}
                lines = [f"{w} -> " + ", ".join(tokens[int(j)] for j in table[index[w]] if j >= 0)
                         for w in SAMPLE_WORDS if w in index]
            sample = out_dir / f"{kind}_sample.txt"
            sample.write_text("\n".join(lines) + "\n", encoding="utf-8")
            files.append(sample)
            if Path(table_path).is_file():  # the table itself, copied next to the other artifacts
                copy = out_dir / f"{kind}_table.pt"
                shutil.copyfile(table_path, copy)
                files.append(copy)
    if not final:
        return files
    if cfg.pca_figure:
        path = pca_figure(setup, out_dir / "embedding_pca.png")
        if path is not None:
            files.append(path)
    if cfg.save_model:
        path = out_dir / "model"
        setup.model.model.save_pretrained(path)
        setup.tokenizer.save_pretrained(path)
        files += sorted(p for p in path.rglob("*") if p.is_file())
    return files


def pca_figure(setup: Any, path: Path) -> Optional[Path]:
    """Figure 2 of similar-word-noise.txt: PCA of clean / SMART / 1-1 noised vectors of ``pca_words`` (embedding output, layer 2)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from xaicore.perturbation.embedding_views import embedding_views, pca_2d

    cfg = setup.cfg
    ids = {w: setup.tokenizer.convert_tokens_to_ids(w) for w in cfg.pca_words}
    ids = {w: i for w, i in ids.items() if i is not None and i != setup.tokenizer.unk_token_id}
    batch = setup.first_test_batch().to(setup.device)
    occurrences = {w: torch.nonzero(batch.input_ids == i)[:30] for w, i in ids.items()}
    occurrences = {w: pos for w, pos in occurrences.items() if len(pos)}
    if not occurrences:
        return None
    smart = setup.regularizer if isinstance(setup.regularizer, SmartRegularizer) else SmartRegularizer(
        noise_var=cfg.smart_noise_var, step_size=cfg.smart_step_size, target=cfg.smart_target, mask=cfg.smart_mask)
    if "neighbours" not in setup.tables:
        setup._regularizer_for("similar_1_1")
    noise = make_noise_regularizer("similar_1_1", setup.tables["neighbours"][0].ids.to(setup.device),
                                   noise_size=cfg.noise_size)
    positions = torch.cat(list(occurrences.values()))
    views = embedding_views(setup.model, batch, positions, smart=smart, noise=noise)
    fig = Figure(figsize=(10, 4.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    colours = {"clean": "tab:blue", "smart": "tab:red", "noise": "tab:green"}
    markers = dict(zip(occurrences, "os^Dv*"))
    for ax, (depth, groups) in zip(axes, views.items()):
        coords = pca_2d(groups)
        for cond, xy in coords.items():
            start = 0
            for w, pos in occurrences.items():
                pts = xy[start : start + len(pos)].cpu()
                start += len(pos)
                ax.scatter(pts[:, 0], pts[:, 1], s=14, c=colours[cond], marker=markers[w], alpha=0.6,
                           label=f"{w} ({cond})")
        ax.set_title({"embeddings": "embedding output"}.get(depth, depth.replace("layer", "layer ")))
    axes[1].legend(fontsize=6, loc="best")
    fig.suptitle("PCA: clean vs SMART (mt-dnn step) vs 1-1 noise", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
