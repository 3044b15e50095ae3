"""Weak learner on frozen feature maps (faithfulness-evaluation.txt section 5, after Wiegreffe & Pinter 2019)."""
from __future__ import annotations

import math
from typing import Callable, Iterable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaicore.types import Batch, ClassifierOutput

__all__ = ["FEATURE_MAPS", "normalize_feature_map", "WeakLearner", "with_feature_maps", "train_weak_learner"]

FEATURE_MAPS = ("given", "uniform", "random")


def normalize_feature_map(scores: Tensor, mask: Tensor, *, norm: str = "l2", absolute: bool = False) -> Tensor:
    """Scale each example's map to unit norm over ``mask``; 0 outside.

    Args:
        scores: ``(B, T)`` feature map.
        mask: ``(B, T)`` bool, tokens the map is defined on.
        norm: ``"l2"`` (``||w||_2 = 1``) or ``"l1"`` (``sum |w| = 1``; a
            non-negative map becomes a distribution).
        absolute: take ``|scores|`` first (signs dropped).

    Returns:
        ``(B, T)`` float; an example whose map is 0 everywhere on ``mask``
        gets the uniform map of unit norm (no direction to scale); an example
        with an empty mask stays 0.
    """
    if norm not in ("l1", "l2"):
        raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")
    m = mask.bool()
    w = scores.detach().float()
    w = w.abs() if absolute else w
    w = torch.where(m, w, torch.zeros_like(w))
    size = w.abs().sum(dim=1, keepdim=True) if norm == "l1" else w.norm(dim=1, keepdim=True)
    uniform = m.float()
    u_size = uniform.sum(dim=1, keepdim=True) if norm == "l1" else uniform.norm(dim=1, keepdim=True)
    uniform = uniform / u_size.clamp_min(1e-12)
    return torch.where(size > 0, w / size.clamp_min(1e-30), uniform)


class WeakLearner(nn.Module):
    """Context-free MLP pooled by a frozen feature map (Wiegreffe & Pinter 2019, sec. 5; faithfulness-evaluation.txt fig. 4).

    ::

        h_t    = ReLU(W_1 e_t + b_1)          # per token, no context (E -> H)
        pooled = sum_t w_t h_t                 # w: frozen map, unit norm over real tokens
        logits = W_o pooled + b_o

    ``e_t`` is the learner's *own* trainable embedding. The map ``w`` is
    normalised with :func:`normalize_feature_map` (``norm``, default L2:
    faithfulness-evaluation.txt only says "normalise the feature map's norm
    to 1.0" without naming the norm; L2 is the default reading of "norm",
    ``"l1"`` reproduces Wiegreffe & Pinter's attention distributions) and
    never receives gradients.

    Args:
        vocab_size: number of token ids.
        num_classes: number of classes.
        embedding_dim: E.
        hidden_dim: H.
        pad_id: padding id (its embedding row is zero).
        norm: ``"l2"`` or ``"l1"``.
        absolute: pool with ``|w|`` (default False: signs kept).
    """

    #: declared capability (:mod:`xaicore.models.protocol`): ``forward(..., weights=)``
    takes_token_weights = True

    def __init__(
        self,
        vocab_size: int,
        num_classes: int = 2,
        *,
        embedding_dim: int = 64,
        hidden_dim: int = 64,
        pad_id: int = 0,
        norm: str = "l2",
        absolute: bool = False,
    ) -> None:
        super().__init__()
        if norm not in ("l1", "l2"):
            raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")
        self.pad_token_id = int(pad_id)
        self.norm, self.absolute = norm, bool(absolute)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.mlp = nn.Sequential(nn.Linear(embedding_dim, hidden_dim), nn.ReLU())
        self.classifier = nn.Linear(hidden_dim, num_classes)

    def embed(self, input_ids: Tensor) -> Tensor:
        return self.embedding(input_ids)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        *,
        weights: Optional[Tensor] = None,
        inputs_embeds: Optional[Tensor] = None,
        **_ignored,
    ) -> ClassifierOutput:
        """Classify with pooling weights ``weights`` ``(B, T)`` (0 where they must not pool).

        Args:
            input_ids: ``(B, T)`` token ids.
            attention_mask: ``(B, T)`` bool, real tokens (holes allowed).
            weights: ``(B, T)`` raw feature map; normalised here over
                ``attention_mask``; ``None`` = uniform.
            inputs_embeds: ``(B, T, E)`` instead of the lookup.

        Returns:
            :class:`ClassifierOutput` with ``logits`` ``(B, C)``, ``attention``
            = the normalised weights ``(B, T)``, ``hidden`` ``(B, T, H)`` and
            ``embeddings``.
        """
        mask = attention_mask.bool()
        emb = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        hidden = self.mlp(emb)  # (B, T, H)
        raw = mask.float() if weights is None else weights.detach().to(hidden.dtype)
        w = normalize_feature_map(raw, mask, norm=self.norm, absolute=self.absolute).to(hidden.dtype)
        pooled = torch.bmm(w.unsqueeze(1), hidden).squeeze(1)  # (B, H)
        return ClassifierOutput(logits=self.classifier(pooled), attention=w, hidden=hidden, embeddings=emb)


MapPairs = Sequence[tuple[Batch, Optional[Tensor]]]


def with_feature_maps(
    model: nn.Module,
    batches: Iterable[Batch],
    method: Union[str, Callable[..., Tensor]],
    **opts,
) -> list[tuple[Batch, Tensor]]:
    """Pair every batch with its feature map (for the predicted class, as in sec. 5).

    Args:
        model: the explained classifier.
        batches: inputs (materialised into a list).
        method: a name in :data:`xaicore.faithfulness.attribution.ATTRIBUTION_METHODS` or a
            function ``(model, batch, **opts) -> (B, T)``.
        **opts: passed to the method.

    Returns:
        ``[(batch, scores (B, T) detached on CPU-or-batch device), ...]``.
    """
    if isinstance(method, str):
        from xaicore.faithfulness.attribution import ATTRIBUTION_METHODS

        if method not in ATTRIBUTION_METHODS:
            raise ValueError(f"unknown attribution method {method!r}")
        method = ATTRIBUTION_METHODS[method]
    return [(b, method(model, b, **opts).detach()) for b in batches]


def _infer_sizes(pairs: MapPairs) -> tuple[int, int]:
    vocab, classes = 0, 0
    for b, _ in pairs:
        vocab = max(vocab, int(b.input_ids.max()) + 1)
        if b.labels is not None:
            classes = max(classes, int(b.labels.max()) + 1)
    return vocab, max(classes, 2)


def train_weak_learner(
    train: MapPairs,
    valid: MapPairs,
    test: MapPairs,
    *,
    feature_map: str = "given",
    vocab_size: Optional[int] = None,
    num_classes: Optional[int] = None,
    embedding_dim: int = 64,
    hidden_dim: int = 64,
    pad_id: int = 0,
    norm: str = "l2",
    absolute: bool = False,
    epochs: int = 10,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: Union[str, torch.device, None] = None,
) -> dict:
    """Train a :class:`WeakLearner` on frozen feature maps and report test F1 (faithfulness-evaluation.txt sec. 5).

    Training: Adam on the mean cross-entropy of the *gold* labels, ``epochs``
    passes over ``train`` in a seeded random batch order; after each epoch the
    validation loss (mean per-example CE) and macro F1 are recorded; the
    weights of the epoch with the lowest validation loss are evaluated on
    ``test``. The maps should be made for the explained model's *predicted*
    labels (:func:`with_feature_maps`), and their norm is set to 1.

    Args:
        train, valid, test: sequences of ``(batch, map (B, T) or None)``;
            batches need ``labels``. Maps are ignored for the baselines.
        feature_map: ``"given"`` (default: the paired maps), ``"uniform"``
            (equal weights on content tokens) or ``"random"`` (a fresh
            ``U(0, 1)`` map on content tokens for *every* forward pass, train
            and evaluation alike: "生成する毎回ランダム"; seeded by ``seed``).
        vocab_size, num_classes: default: inferred from the data (max id + 1,
            max label + 1, at least 2).
        embedding_dim, hidden_dim, pad_id, norm, absolute: see :class:`WeakLearner`.
        epochs: >= 1. lr: Adam learning rate. weight_decay: Adam L2.
        seed: seeds the initialisation (without touching the global RNG),
            batch order and random maps.
        device: where to train (default CPU).

    Returns:
        ``{"f1", "accuracy"`` (test, best epoch), ``"valid_loss_curve"``,
        ``"valid_f1_curve"``, ``"train_loss_curve"`` (per epoch lists),
        ``"best_epoch"`` (1-based), ``"model"`` (the trained learner, eval mode)``}``.
    """
    from xaicore.metrics import classification_metrics

    if feature_map not in FEATURE_MAPS:
        raise ValueError(f"feature_map must be one of {', '.join(FEATURE_MAPS)}; got {feature_map!r}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if not train or not valid or not test:
        raise ValueError("train, valid and test must each hold at least one batch")
    for name, pairs in (("train", train), ("valid", valid), ("test", test)):
        for b, m in pairs:
            if b.labels is None:
                raise ValueError(f"every {name} batch needs labels")
            if feature_map == "given" and m is None:
                raise ValueError(f'feature_map="given" needs a map for every {name} batch')
    inferred = _infer_sizes(list(train) + list(valid) + list(test))
    vocab_size = vocab_size or inferred[0]
    num_classes = num_classes or inferred[1]
    device = torch.device(device) if device is not None else torch.device("cpu")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WeakLearner(
            vocab_size, num_classes, embedding_dim=embedding_dim, hidden_dim=hidden_dim,
            pad_id=pad_id, norm=norm, absolute=absolute,
        ).to(device)
    gen = torch.Generator().manual_seed(seed + 1)
    order_rng = np.random.default_rng(seed)

    def weights_for(batch: Batch, given: Optional[Tensor]) -> Tensor:
        content = batch.content_mask
        if feature_map == "uniform":
            w = content.float()
        elif feature_map == "random":
            w = torch.rand(content.shape, generator=gen).to(device) * content
        else:
            w = given.to(device).float() * content
        return w

    def evaluate(pairs: MapPairs) -> tuple[float, dict]:
        model.eval()
        losses, labels, probs = [], [], []
        with torch.no_grad():
            for b, m in pairs:
                b = b.to(device)
                logits = model(b.input_ids, b.attention_mask, weights=weights_for(b, m)).logits
                losses.append(F.cross_entropy(logits, b.labels, reduction="sum").item())
                labels.append(b.labels.cpu())
                probs.append(torch.softmax(logits, -1).cpu())
        n = sum(len(x) for x in labels)
        metrics = classification_metrics(torch.cat(labels).numpy(), torch.cat(probs).numpy())
        return sum(losses) / n, metrics

    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    valid_loss, valid_f1, train_loss = [], [], []
    best, best_epoch, best_state = math.inf, 0, None
    for epoch in range(epochs):
        model.train()
        total, count = 0.0, 0
        for i in order_rng.permutation(len(train)).tolist():
            b, m = train[i]
            b = b.to(device)
            logits = model(b.input_ids, b.attention_mask, weights=weights_for(b, m)).logits
            loss = F.cross_entropy(logits, b.labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + loss.item() * b.size, count + b.size
        train_loss.append(total / max(1, count))
        vl, vm = evaluate(valid)
        valid_loss.append(vl)
        valid_f1.append(vm["f1"])
        if vl < best:
            best, best_epoch = vl, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    _, tm = evaluate(test)
    model.eval()
    return {
        "f1": tm["f1"],
        "accuracy": tm["accuracy"],
        "valid_loss_curve": valid_loss,
        "valid_f1_curve": valid_f1,
        "train_loss_curve": train_loss,
        "best_epoch": best_epoch,
        "model": model,
    }

