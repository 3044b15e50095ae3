"""Artifacts of a ``classifier`` trial: its config, training curves, attention heatmaps and weights."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from trainables.artifacts import plot_training_curves, token_heatmap_html, write_config_yaml
from trainables.classifier.setup import ClassifierSetup
from xaicore.models.protocol import forward_batch


def write_artifacts(setup: ClassifierSetup, history: list[dict], out_dir: Path, *, final: bool = True) -> list[Path]:
    """Config, training curves, attention heatmaps (and the weights, ``final`` only) into ``out_dir``."""
    cfg, model = setup.cfg, setup.model
    files = [write_config_yaml({"trainable": "classifier", "config": dataclasses.asdict(cfg)}, out_dir / "config.yaml")]
    files.append(plot_training_curves(history, out_dir / "training_curves.png",
                                      keys=["train/loss", "train/reg", "valid/f1", "valid/accuracy", "valid/corr",
                                            "valid/rationale_auprc"]))
    if cfg.heatmaps > 0:
        batch = setup.first_test_batch().to(setup.device)
        n = min(cfg.heatmaps, batch.size)
        model.eval()
        with torch.no_grad():
            out = forward_batch(model, batch)
        rows = []
        for i in range(n):
            length = int(batch.attention_mask[i].sum())
            tokens = [setup.vocab.itos[int(t)] for t in batch.input_ids[i, :length]]
            pred = int(out.logits[i].argmax())
            label = int(batch.labels[i]) if batch.labels is not None else -1
            rows.append((tokens, out.attention[i, :length].tolist(), f"label={label} pred={pred}"))
        path = out_dir / "attention_heatmaps.html"
        path.write_text(token_heatmap_html(rows, "attention weights (test examples)"))
        files.append(path)
    if cfg.save_model and final:
        path = out_dir / "model" / "best_model.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": model.state_dict(), "config": dataclasses.asdict(model.config),
                    "vocab": setup.vocab.to_dict()}, path)
        files.append(path)
    return files
