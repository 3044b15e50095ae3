"""Data (comma-separated split lists, per-round parts), tokenizer, encoder, regulariser and trainer of one
``finetune`` config (:class:`FinetuneSetup`; a subclass brings other data or another objective)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from trainables.data_setup import SYNTHETIC, hold_out, load_splits
from trainables.data_setup import subsample as _subsample
from trainables.finetune.config import FinetuneTrialConfig, round_of, split_list
from trainables.finetune.metrics import round_accuracy
from trainables.protocol import resolve_device, runtime_compilation, runtime_precision
from xaicore.data.batching import batches, encode_dataset, eval_batches
from xaicore.data.loading import KNOWN_DATASETS, TextDataset, load_dataset
from xaicore.metrics import classification_metrics, predict
from xaicore.models.transformer import TransformerClassifier, TransformerClassifierConfig
from xaicore.perturbation.noise import NOISE_RECIPES, make_noise_regularizer
from xaicore.perturbation.smart import SmartRegularizer
from xaicore.training import TrainConfig, Trainer
from xaicore.data.vocab import HFEncoder

#: batch size of the (unshuffled) valid / test batches: evaluation only (each batch is padded to its longest text)
EVAL_BATCH_SIZE = 64


@dataclass(frozen=True)
class Part:
    """A contiguous slice ``[start, stop)`` of a concatenated evaluation set and its round."""

    split: str
    round: Optional[str]
    start: int
    stop: int


def _concat(parts: list[TextDataset], name: str) -> TextDataset:
    first = parts[0]
    pairs = None if first.text_pairs is None else tuple(t for d in parts for t in d.text_pairs)
    labels = None if first.labels is None else tuple(y for d in parts for y in d.labels)
    return TextDataset(texts=tuple(t for d in parts for t in d.texts), labels=labels, text_pairs=pairs,
                       label_names=first.label_names, name=name)


def load_split_list(cfg: FinetuneTrialConfig, which: str, label_names=None,
                    dropped: Optional[dict[str, int]] = None) -> tuple[TextDataset, list[Part]]:
    """Load and concatenate the comma-separated splits of ``which`` (``train_split`` ...);
    ``dropped[split]``: the rows ``drop_empty`` dropped from each split's file."""
    datasets, parts, start = [], [], 0
    for split in split_list(getattr(cfg, which)):
        kwargs = {"columns": cfg.columns, "drop_empty": cfg.drop_empty} if cfg.dataset not in KNOWN_DATASETS else {}
        if label_names is not None:
            kwargs["label_names"] = label_names
        data = load_dataset(cfg.dataset, split=split, **kwargs)
        if dropped is not None and cfg.drop_empty and cfg.dataset not in KNOWN_DATASETS:
            dropped[split] = data.dropped_empty
        if label_names is None and data.label_names is not None:
            label_names = data.label_names  # the first training split's label set maps every other split
        datasets.append(data)
        parts.append(Part(split, round_of(split), start, start + len(data)))
        start += len(data)
    return _concat(datasets, f"{cfg.dataset}:{getattr(cfg, which)}"), parts


class FinetuneSetup:
    """Data, tokenizer, model, regulariser and trainer of one config (deterministic given the seed)."""

    def __init__(self, cfg: FinetuneTrialConfig) -> None:
        from transformers import AutoTokenizer

        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.load_data()
        labels = set(self.train.labels or ()) | set(self.valid.labels or ()) | set(self.test.labels or ())
        self.num_classes = max(2, len(self.train.label_names or ()), max(labels, default=0) + 1)

        path = cfg.model_path
        local = cfg.local_files_only or Path(path).is_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
        self.encoder = HFEncoder(self.tokenizer, max_length=cfg.max_length)
        self.model = TransformerClassifier.from_pretrained(self.model_config(path, local))
        self.model.to(self.device)
        self.tables: dict[str, Any] = {}
        self.regularizer = self._regularizer()
        self.steps_per_epoch = math.ceil(len(self.train) / cfg.batch_size)
        self.compilation = runtime_compilation(cfg)  # compile: true pads to a multiple of 8 (pad_multiple)
        pad = self.compilation.pad_multiple
        self.trainer = Trainer(
            self.model,
            TrainConfig(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
                        decay=True, max_grad_norm=cfg.max_grad_norm, lam=cfg.lam,
                        selection_metric=cfg.selection_metric),
            steps_per_epoch=self.steps_per_epoch, regularizer=self.regularizer, device=self.device,
            loss_fn=self.loss_fn(), precision=runtime_precision(cfg, self.device), compilation=self.compilation,
        )
        # tokenised once per trial; the batches below only pad and collate
        self.encoded = {name: encode_dataset(getattr(self, name), self.encoder) for name in ("train", "valid", "test")}
        sort = cfg.bucket_pool is not None  # bucket_pool: null = today's batches, evaluation included
        self.valid_batches = eval_batches(self.encoded["valid"], self.encoder, batch_size=EVAL_BATCH_SIZE, sort=sort,
                                          pad_multiple=pad)
        self.test_batches = eval_batches(self.encoded["test"], self.encoder, batch_size=EVAL_BATCH_SIZE, sort=sort,
                                         pad_multiple=pad)

    def model_config(self, path: str, local: bool) -> TransformerClassifierConfig:
        """How the classifier is read from ``path`` (``local``: no hub); a subclass may restrict it
        (e.g. safetensors weights only for a model another trial saved)."""
        return TransformerClassifierConfig(path, num_classes=self.num_classes, local_files_only=local)

    def load_data(self) -> None:
        """Set ``train`` / ``valid`` / ``test`` (and the per-round parts); subclasses load other data."""
        cfg = self.cfg
        self.valid_parts: list[Part] = []
        self.test_parts: list[Part] = []
        self.dropped_empty: dict[str, int] = {}  # split -> rows drop_empty dropped from its file
        if cfg.dataset == SYNTHETIC or (cfg.dataset not in KNOWN_DATASETS and "{split}" not in cfg.dataset):
            s = load_splits(cfg.dataset, columns=cfg.columns, valid_fraction=cfg.valid_fraction,
                            synthetic_size=cfg.synthetic_size, seed=cfg.data_seed, drop_empty=cfg.drop_empty)
            self.train, self.valid, self.test = s.train, s.valid, s.test
            self.dropped_empty = dict(s.dropped_empty)
        else:
            dropped = self.dropped_empty
            self.train, _ = load_split_list(cfg, "train_split", dropped=dropped)
            names = self.train.label_names
            self.test, self.test_parts = load_split_list(cfg, "test_split", names, dropped=dropped)
            if cfg.valid_split:
                self.valid, self.valid_parts = load_split_list(cfg, "valid_split", names, dropped=dropped)
            else:
                self.valid, self.train = hold_out(self.train, cfg.valid_fraction, cfg.data_seed)
        self.train = _subsample(self.train, cfg.max_train_examples, cfg.data_seed)
        if cfg.max_eval_examples is not None:  # keep per-round parts consistent: subsample each part
            self.valid, self.valid_parts = self._subsample_parts(self.valid, self.valid_parts)
            self.test, self.test_parts = self._subsample_parts(self.test, self.test_parts)

    def loss_fn(self):
        """The training objective: ``None`` = cross-entropy + regulariser (:func:`xaicore.training.compute_loss`);
        a subclass may return ``(model, batch) -> (loss, parts)`` (e.g. cancel-out training)."""
        return None

    def _subsample_parts(self, data: TextDataset, parts: list[Part]) -> tuple[TextDataset, list[Part]]:
        n = self.cfg.max_eval_examples
        if not parts:
            return _subsample(data, n, self.cfg.data_seed), []
        keep, new_parts, start = [], [], 0
        for part in parts:
            size = part.stop - part.start
            take = min(size, max(1, n // len(parts)))
            idx = sorted(np.random.default_rng([self.cfg.data_seed, 8, part.start]).permutation(size)[:take].tolist())
            keep += [part.start + i for i in idx]
            new_parts.append(Part(part.split, part.round, start, start + take))
            start += take
        return data.subset(keep), new_parts

    # -------------------------------------------------------------- tables
    def vocabulary(self) -> tuple[list[str], torch.Tensor]:
        from xaicore.perturbation.neighbours import excluded_tokens

        V = int(self.model.model.get_input_embeddings().weight.shape[0])
        n_tok = len(self.tokenizer)
        tokens = [self.tokenizer.convert_ids_to_tokens(i) if i < n_tok else f"<extra_{i}>" for i in range(V)]
        exclude = excluded_tokens(tokens, self.tokenizer.all_special_ids)
        exclude[n_tok:] = True
        return tokens, exclude

    def cache_dir(self) -> Path:
        if self.cfg.cache_dir:
            return Path(self.cfg.cache_dir).expanduser()
        return Path(os.environ.get("XAISWEEP_CACHE", Path.home() / ".cache" / "xaisweep")) / "tables"

    def _regularizer(self):
        return self._regularizer_for(self.cfg.regularizer)

    def _regularizer_for(self, name: str):
        cfg = self.cfg
        if name == "none":
            return None
        if name == "smart":
            return SmartRegularizer(noise_var=cfg.smart_noise_var, step_size=cfg.smart_step_size,
                                    target=cfg.smart_target, mask=cfg.smart_mask)
        recipe = NOISE_RECIPES[name]
        tokens, exclude = self.vocabulary()
        tables = {"neighbours": self._neighbours, "synonyms": self._synonyms}  # the table a candidate source reads
        candidates = tables[recipe.source.table](tokens, exclude)
        return make_noise_regularizer(name, candidates.to(self.device), noise_size=cfg.noise_size,
                                      fraction=cfg.noise_fraction, selection=cfg.token_selection)

    def _neighbours(self, tokens: list[str], exclude: torch.Tensor) -> torch.Tensor:
        from xaicore.perturbation.neighbours import cached_neighbours

        cfg = self.cfg
        weight = self.model.model.get_input_embeddings().weight
        table, path, _ = cached_neighbours(self.cache_dir(), model_id=cfg.model_path, tokens=tokens,
                                           weight=weight.detach(), k=cfg.neighbour_k, exclude=exclude)
        self.tables["neighbours"] = (table, path, tokens)
        return table.ids

    def _synonyms(self, tokens: list[str], exclude: torch.Tensor) -> torch.Tensor:
        from trainables.wordnet_data import load_wordnet
        from xaicore.perturbation.neighbours import vocabulary_hash
        from xaicore.perturbation.synonyms import synonym_table, wordnet_synonyms

        path = self.cache_dir() / f"wordnet-{vocabulary_hash(tokens)[:16]}.pt"
        if path.is_file():
            table = torch.load(path, weights_only=True)
        else:
            table = synonym_table(tokens, wordnet_synonyms(load_wordnet(self.cfg.wordnet_dir)), exclude=exclude)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(table, path.with_suffix(".tmp"))
            path.with_suffix(".tmp").replace(path)
        self.tables["synonyms"] = (table, path, tokens)
        return table

    # ---------------------------------------------------------------- loop
    def epoch_batches(self, epoch: int):
        return ((b, None) for b in batches(self.encoded["train"], self.encoder, batch_size=self.cfg.batch_size,
                                            shuffle=True, seed=self.cfg.seed, epoch=epoch,
                                            bucket_pool=self.cfg.bucket_pool,
                                            pad_multiple=self.compilation.pad_multiple))

    def first_test_batch(self):
        """The first ``EVAL_BATCH_SIZE`` test examples in dataset order (heatmaps, figures)."""
        return next(batches(self.encoded["test"], self.encoder, batch_size=EVAL_BATCH_SIZE, shuffle=False, seed=0))

    def evaluate(self, model, which: str = "valid") -> dict[str, float]:
        data, parts = (self.valid_batches, self.valid_parts) if which == "valid" else (self.test_batches, self.test_parts)
        labels, probs = predict(model, data, self.device)
        out = classification_metrics(labels, probs)
        pred = probs.argmax(1)
        for part in parts:
            if part.round is not None:
                sl = slice(part.start, part.stop)
                out[round_accuracy(part.round)] = float((pred[sl] == labels[sl]).mean())
        return out
