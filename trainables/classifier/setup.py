"""Data, word vocabulary, attention-LSTM and trainer of one ``classifier`` config (:class:`ClassifierSetup`)."""
from __future__ import annotations

import math
from typing import Optional

import torch

from trainables.classifier.config import ClassifierTrialConfig
from trainables.data_setup import Splits, load_splits, load_unlabeled
from trainables.hub_checks import MINILM
from trainables.protocol import resolve_device, runtime_compilation, runtime_precision
from xaicore.data.batching import SemiSupervisedBatches, batches, encode_dataset, eval_batches
from xaicore.metrics import classification_metrics, predict
from xaicore.models.lstm_attention import AttentionLSTMClassifier, AttentionLSTMConfig
from xaicore.models.pretrained import packaged_minilm_dir as minilm_dir
from xaicore.perturbation.regularizers import REGULARIZER_KINDS, WORD_EMBEDDINGS, make_regularizer
from xaicore.training import TrainConfig, Trainer
from xaicore.data.vocab import WordEncoder, WordVocab


def unlabeled_pool(data, ratio: float, n_labeled: int, *, seed: int, source: str = "unlabeled"):
    """The first ``round(ratio * n_labeled)`` examples of a ``seed``-shuffled ``data`` (kept in source order).

    Raises:
        ValueError: the source holds fewer examples than ``N_ul = ratio * N_l`` needs.
    """
    import random

    n_ul = int(round(ratio * n_labeled))
    if n_ul > len(data):
        raise ValueError(f"unlabeled: {source!r} holds {len(data)} examples (after max_unlabeled_examples), but "
                         f"ratio {ratio} needs N_ul = ratio * N_l = {ratio} * {n_labeled} = {n_ul}; add a larger "
                         f"source or lower ratio")
    order = list(range(len(data)))
    random.Random(seed + 3).shuffle(order)
    return data.subset(sorted(order[:max(n_ul, 1)]))


def _method_eps(cfg: ClassifierTrialConfig) -> float:
    """``word_eps`` for the word-embedding methods when it is set, else ``eps``."""
    kind = REGULARIZER_KINDS.get(cfg.regularizer)
    return cfg.word_eps if cfg.word_eps is not None and kind is not None and kind.site is WORD_EMBEDDINGS else cfg.eps


def _pretrained_vectors(cfg: ClassifierTrialConfig, vocab: WordVocab) -> tuple[Optional[torch.Tensor], int]:
    if cfg.pretrained_embeddings is None:
        return None, cfg.embedding_dim
    from transformers import AutoModel, AutoTokenizer

    from xaicore.models.pretrained import word_vectors_from_subwords

    source = str(minilm_dir()) if cfg.pretrained_embeddings == MINILM else cfg.pretrained_embeddings
    tok = AutoTokenizer.from_pretrained(source)
    table = AutoModel.from_pretrained(source).get_input_embeddings().weight
    words = [vocab.itos[i] for i in range(len(vocab))]
    vectors, _ = word_vectors_from_subwords(words, tok, table, seed=cfg.seed)
    return vectors, int(vectors.shape[1])


#: batch size of the (unshuffled) valid / test batches: evaluation only, results do not depend on it
EVAL_BATCH_SIZE = 256

class ClassifierSetup:
    """Data, encoder, model and trainer for one config (deterministic given the seed)."""

    def __init__(self, cfg: ClassifierTrialConfig) -> None:
        self.cfg = cfg
        self.splits: Splits = load_splits(
            cfg.dataset, columns=cfg.columns, train_split=cfg.train_split, valid_split=cfg.valid_split,
            test_split=cfg.test_split, valid_fraction=cfg.valid_fraction, synthetic_size=cfg.synthetic_size,
            seed=cfg.data_seed, max_train_examples=cfg.max_train_examples, data_dir=cfg.data_dir,
            drop_empty=cfg.drop_empty,
        )
        self.unlabeled = (
            load_unlabeled(cfg.unlabeled, seed=cfg.data_seed, max_examples=cfg.max_unlabeled_examples,
                           sentences=cfg.unlabeled_sentences, drop_empty=cfg.drop_empty)
            if cfg.unlabeled is not None and cfg.ratio > 0
            else None
        )
        if self.unlabeled is not None:
            self.unlabeled = unlabeled_pool(self.unlabeled, cfg.ratio, len(self.splits.train), seed=cfg.data_seed,
                                            source=cfg.unlabeled)
        vocab_texts = list(self.splits.train.texts)
        if self.unlabeled is not None and cfg.vocab_from_unlabeled:
            vocab_texts += list(self.unlabeled.texts)
        self.vocab = WordVocab.build(vocab_texts, min_freq=cfg.min_freq, max_size=cfg.max_vocab)
        self.encoder = WordEncoder(self.vocab, max_length=cfg.max_length)
        self.num_classes = max(2, self.splits.train.num_classes)
        vectors, dim = _pretrained_vectors(cfg, self.vocab)
        self.model = AttentionLSTMClassifier(
            AttentionLSTMConfig(
                vocab_size=len(self.vocab), num_classes=self.num_classes, embedding_dim=dim,
                hidden_dim=cfg.hidden_dim, attention_dim=cfg.attention_dim, dropout=cfg.dropout,
                pad_id=self.encoder.pad_token_id,
            ),
            embeddings=vectors,
        )
        self.device = resolve_device(cfg.device)
        self.compilation = runtime_compilation(cfg)  # compile: true pads to a multiple of 8 (pad_multiple)
        pad = self.compilation.pad_multiple
        self.steps_per_epoch = math.ceil(len(self.splits.train) / cfg.batch_size)
        self.trainer = Trainer(
            self.model,
            TrainConfig(
                epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, optimizer=cfg.optimizer,
                amsgrad=cfg.amsgrad, warmup_ratio=cfg.warmup_ratio,
                decay=cfg.warmup_ratio > 0, max_grad_norm=cfg.max_grad_norm, lam=cfg.lam,
                selection_metric=cfg.selection_metric,
            ),
            steps_per_epoch=self.steps_per_epoch, precision=runtime_precision(cfg, self.device),
            regularizer=make_regularizer(cfg.regularizer, eps=_method_eps(cfg), xi=cfg.xi, neighbours=cfg.neighbours,
                                         word_neighbours=cfg.word_neighbours,
                                         refresh_every=self.steps_per_epoch),
            device=self.device, compilation=self.compilation,
        )
        # tokenised once per trial; the batches below only pad and collate
        self.encoded = {name: encode_dataset(getattr(self.splits, name), self.encoder)
                        for name in ("train", "valid", "test")}
        sort = cfg.bucket_pool is not None  # bucket_pool: null = today's batches, evaluation included
        self.valid_batches = eval_batches(self.encoded["valid"], self.encoder, batch_size=EVAL_BATCH_SIZE, sort=sort,
                                          pad_multiple=pad)
        self.test_batches = eval_batches(self.encoded["test"], self.encoder, batch_size=EVAL_BATCH_SIZE, sort=sort,
                                         pad_multiple=pad)
        if self.unlabeled is not None:
            self._semi = SemiSupervisedBatches(
                self.encoded["train"], encode_dataset(self.unlabeled, self.encoder), self.encoder,
                batch_size=cfg.batch_size, ratio=cfg.ratio, seed=cfg.seed, bucket_pool=cfg.bucket_pool,
                pad_multiple=pad,
            )

    def epoch_batches(self, epoch: int):
        if self.unlabeled is not None:
            return self._semi.epoch(epoch)
        return ((b, None) for b in batches(self.encoded["train"], self.encoder, batch_size=self.cfg.batch_size,
                                            shuffle=True, seed=self.cfg.seed, epoch=epoch,
                                            bucket_pool=self.cfg.bucket_pool,
                                            pad_multiple=self.compilation.pad_multiple))

    def first_test_batch(self):
        """The first ``EVAL_BATCH_SIZE`` test examples in dataset order (heatmaps, figures)."""
        return next(batches(self.encoded["test"], self.encoder, batch_size=EVAL_BATCH_SIZE, shuffle=False, seed=0))

    def split_batches(self, which: str):
        """The evaluation batches of ``which`` (``valid`` or ``test``)."""
        if which not in ("valid", "test"):
            raise ValueError(f"split must be 'valid' or 'test', got {which!r}")
        return self.valid_batches if which == "valid" else self.test_batches

    def evaluate(self, model, which: str = "valid") -> dict[str, float]:
        labels, probs = predict(model, self.split_batches(which), self.device)
        return classification_metrics(labels, probs)
