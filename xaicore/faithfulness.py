"""Faithfulness (and plausibility) metrics for token feature maps.

Implements the three evaluations of faithfulness-evaluation.txt plus ERASER's
soft-score metrics and agreement measures. Every metric takes a classifier,
a :class:`~xaicore.types.Batch` and a feature map ``scores`` ``(B, T)`` (from
:mod:`xaicore.attribution` or any other source; only its values on content
tokens, :attr:`Batch.content_mask`, are read) and runs under
:func:`torch.no_grad` with the model in eval mode (every module's previous
train/eval flag is restored).

Token removal (:func:`remove_tokens`), shared by every erasure metric and by
:func:`xaicore.attribution.leave_one_out`; ``intervention`` is one of:

* ``"pad"`` (default) - the token's id is replaced by the PAD id (or by
  ``replace_id``, e.g. ``[MASK]``/UNK) and its position *stays in the
  attention mask*: the sequence length is unchanged and the model still
  "sees" a PAD token there (for :class:`~xaicore.models.AttentionLSTMClassifier`
  a zero embedding that the BiLSTM reads and the attention may weight).
  With ``replace_id=[MASK]`` this is faithfulness-evaluation.txt's "MASK".
* ``"mask"`` - the position is set False in the attention mask (the id is
  left as it is): a transformer no longer attends to it. Only for models that
  accept non-contiguous attention masks (transformers, :class:`WeakLearner`);
  the packed BiLSTM assumes right padding, so it raises ``ValueError`` there.
* ``"delete"`` - the token is removed and the rest shifted left (padding is
  appended): the model sees the shorter sequence.

Removal only ever touches content tokens: special tokens ([CLS], [SEP]) and
padding are never removed. Ranking: tokens are removed in descending order of
``scores``; ties are broken by position (earlier first).

Evaluations:

* :func:`deletion_until_flip` - faithfulness-evaluation.txt section 4 ("ERASER"
  deletion): fraction of content tokens removed until the predicted label
  changes, 1.0 if it never does (lower = more faithful).
* :class:`WeakLearner` / :func:`train_weak_learner` - section 5 (after
  Wiegreffe & Pinter 2019): a context-free per-token MLP pooled with the
  frozen feature map; test F1 and the validation-loss curve; ``"uniform"``
  and ``"random"`` baselines.
* :func:`shuffle_tvd` - section 6 (after Jain & Wallace 2019): median over
  random permutations of the feature map (used as pooling / attention
  weights) of the total variation distance between output distributions.
* :func:`erasure_curves` / :func:`comprehensiveness` / :func:`sufficiency` -
  DeYoung et al. (2020) ERASER, AOPC over bins 1, 5, 10, 20, 50 %.
* :func:`rank_agreement`, :func:`rationale_agreement`, :func:`precision_at_k`
  - agreement between two maps, and with human / planted rationales.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaicore.attribution import _index_batch, eval_mode, resolve_pad_token_id, resolve_target
from xaicore.regularizers import forward_batch
from xaicore.types import Batch, ClassifierOutput

__all__ = [
    "INTERVENTIONS",
    "ERASER_BINS",
    "check_intervention",
    "remove_tokens",
    "descending_rank",
    "deletion_until_flip",
    "erasure_curves",
    "comprehensiveness",
    "sufficiency",
    "normalize_feature_map",
    "WeakLearner",
    "with_feature_maps",
    "train_weak_learner",
    "shuffle_tvd",
    "total_variation",
    "rank_agreement",
    "rationale_agreement",
    "precision_at_k",
    "nanmean",
]

INTERVENTIONS = ("pad", "mask", "delete")
ERASER_BINS = (0.01, 0.05, 0.10, 0.20, 0.50)
FEATURE_MAPS = ("given", "uniform", "random")


# ------------------------------------------------------------ interventions
def check_intervention(model: nn.Module, intervention: str) -> None:
    """Raise ``ValueError`` for an unknown intervention or ``"mask"`` on a packed-LSTM model."""
    if intervention not in INTERVENTIONS:
        raise ValueError(f"intervention must be one of {', '.join(INTERVENTIONS)}; got {intervention!r}")
    if intervention == "mask":
        from xaicore.models.lstm_attention import AttentionLSTMClassifier

        if isinstance(model, AttentionLSTMClassifier):
            raise ValueError(
                'intervention="mask" needs a model that accepts holes in the attention mask; '
                "AttentionLSTMClassifier packs sequences by length (right padding): use 'pad' or 'delete'"
            )


def remove_tokens(
    batch: Batch,
    remove: Tensor,
    *,
    intervention: str = "pad",
    pad_token_id: int = 0,
    replace_id: Optional[int] = None,
) -> Batch:
    """Remove the tokens ``remove & batch.content_mask`` from ``batch`` (see module docstring).

    Args:
        batch: inputs ``(B, T)``.
        remove: ``(B, T)`` bool, tokens to remove; positions outside the
            content mask are ignored.
        intervention: ``"pad"``, ``"mask"`` or ``"delete"``.
        pad_token_id: PAD id (written by ``"pad"`` and used to fill ``"delete"``).
        replace_id: with ``"pad"``, the id written instead of PAD.

    Returns:
        A new :class:`Batch` with the same shape ``(B, T)``; ``labels`` and
        ``index`` unchanged; with ``"delete"`` every per-token tensor
        (token types, special-token and rationale masks) is shifted alongside.
    """
    if intervention not in INTERVENTIONS:
        raise ValueError(f"intervention must be one of {', '.join(INTERVENTIONS)}; got {intervention!r}")
    remove = remove.bool() & batch.content_mask
    if intervention == "pad":
        fill = pad_token_id if replace_id is None else replace_id
        return batch.replace(input_ids=batch.input_ids.masked_fill(remove, int(fill)))
    attention = batch.attention_mask.bool()
    if intervention == "mask":
        return batch.replace(attention_mask=attention & ~remove)
    keep = attention & ~remove
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices  # kept tokens first, in order
    new_attention = keep.gather(1, order)
    shift = lambda x: None if x is None else x.gather(1, order)  # noqa: E731
    ids = shift(batch.input_ids).masked_fill(~new_attention, int(pad_token_id))
    types = shift(batch.token_type_ids)
    special = shift(batch.special_tokens_mask)
    rationale = shift(batch.rationale_mask)
    return batch.replace(
        input_ids=ids,
        attention_mask=new_attention,
        token_type_ids=None if types is None else types.masked_fill(~new_attention, 0),
        special_tokens_mask=None if special is None else special.bool() & new_attention,
        rationale_mask=None if rationale is None else rationale.bool() & new_attention,
    )


def descending_rank(scores: Tensor, mask: Tensor) -> Tensor:
    """``(B, T)`` long rank of each masked token in descending ``scores`` order (0 = most important).

    Ties are broken by position (earlier first); unmasked positions get rank ``T``.
    """
    s = scores.detach().float().masked_fill(~mask, float("-inf"))
    order = torch.sort(s, dim=1, descending=True, stable=True).indices  # (B, T)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(s.shape[1], device=s.device).expand_as(order).contiguous())
    return rank.masked_fill(~mask, s.shape[1])


def _probs(model: nn.Module, batch: Batch) -> Tensor:
    return torch.softmax(forward_batch(model, batch).logits.float(), dim=-1)


# --------------------------------------------------------- deletion (sec. 4)
def deletion_until_flip(
    model: nn.Module,
    batch: Batch,
    scores: Tensor,
    *,
    intervention: str = "pad",
    step: int = 1,
    pad_token_id: Optional[int] = None,
    replace_id: Optional[int] = None,
) -> Tensor:
    """Fraction of content tokens removed, most important first, until the predicted label flips.

    faithfulness-evaluation.txt section 4: remove (MASK) inputs in descending
    feature-map order until the output label changes; deletion rate = removed
    / number of input tokens; 1.0 if removing everything never changes it.
    All examples of the batch advance together: iteration ``i`` removes the
    top ``min(i * step, n_b)`` tokens of every still-unflipped example in one
    forward pass.

    Args:
        model: classifier.
        batch: inputs ``(B, T)``.
        scores: feature map ``(B, T)`` (only content positions are read).
        intervention: ``"pad"`` (default), ``"mask"`` or ``"delete"``.
        step: tokens removed per iteration (>= 1); with ``step > 1`` the
            fraction is a multiple of ``step / n_b`` (or 1.0).
        pad_token_id: PAD id (default: from the model).
        replace_id: with ``"pad"``, id written instead of PAD (e.g. [MASK]).

    Returns:
        ``(B,)`` float in ``(0, 1]`` (lower = more faithful); NaN for an
        example without content tokens.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    check_intervention(model, intervention)
    pad = resolve_pad_token_id(model, pad_token_id)
    content = batch.content_mask
    n = content.sum(dim=1)  # (B,)
    rank = descending_rank(scores, content)
    result = torch.ones(batch.size, dtype=torch.float, device=content.device)
    result[n == 0] = float("nan")
    with torch.no_grad(), eval_mode(model):
        pred0 = _probs(model, batch).argmax(dim=-1)
        active = n > 0
        k = 0
        while bool(active.any()):
            k += step
            idx = active.nonzero().squeeze(1)
            sub = _index_batch(batch, idx)
            removed = remove_tokens(
                sub, rank[idx] < k, intervention=intervention, pad_token_id=pad, replace_id=replace_id
            )
            flipped = _probs(model, removed).argmax(dim=-1) != pred0[idx]
            n_sub = n[idx]
            count = torch.clamp(n_sub, max=k)
            result[idx[flipped]] = (count[flipped].float() / n_sub[flipped].float())
            active[idx[flipped | (k >= n_sub)]] = False
    return result


# ----------------------------------------------------------- ERASER (AOPC)
def _bin_sizes(n: Tensor, q: float) -> Tensor:
    # ceil(q * n) with a tolerance so that e.g. 0.1 * 20 gives 2, not 3
    k = torch.ceil(q * n.double() - 1e-9).long().clamp_min(0)
    return torch.minimum(k, n)


def erasure_curves(
    model: nn.Module,
    batch: Batch,
    scores: Tensor,
    *,
    bins: Sequence[float] = ERASER_BINS,
    target: Union[None, int, Tensor] = None,
    intervention: str = "pad",
    pad_token_id: Optional[int] = None,
    replace_id: Optional[int] = None,
) -> dict[str, Tensor]:
    """ERASER comprehensiveness and sufficiency per bin and their AOPC (DeYoung et al. 2020).

    For each bin ``q`` the rationale ``r_q`` is the top ``k = ceil(q * n_b)``
    content tokens (``n_b`` = content tokens of example ``b``; so at least
    one token for any ``q > 0``), and with ``p(y|.)`` the softmax probability
    of the explained class ``y`` (default: the predicted class on the full
    input)::

        comprehensiveness_q = p(y|x) - p(y|x without r_q)   # higher = more faithful
        sufficiency_q       = p(y|x) - p(y|r_q only)         # lower = more faithful

    "without r_q" removes ``r_q``; "r_q only" removes every other content
    token (special tokens are always kept), both with ``intervention``. AOPC is
    the plain mean over the bins (the ERASER reference code's convention; the
    paper's formula writes it with a ``k = 0`` term and ``1 / (|B| + 1)``).

    Args:
        model, batch, scores, intervention, pad_token_id, replace_id: see
            :func:`deletion_until_flip`.
        bins: fractions in ``(0, 1]`` (default 0.01, 0.05, 0.1, 0.2, 0.5).
        target: explained class; default the predicted class.

    Returns:
        ``{"comprehensiveness": (B, K), "sufficiency": (B, K),
        "aopc_comprehensiveness": (B,), "aopc_sufficiency": (B,)}`` float
        tensors (``K = len(bins)``).
    """
    bins = [float(q) for q in bins]
    if not bins or any(not 0 < q <= 1 for q in bins):
        raise ValueError(f"bins must be a non-empty list of fractions in (0, 1], got {bins}")
    check_intervention(model, intervention)
    pad = resolve_pad_token_id(model, pad_token_id)
    y = resolve_target(model, batch, target)
    content = batch.content_mask
    n = content.sum(dim=1)
    rank = descending_rank(scores, content)
    comp, suff = [], []
    with torch.no_grad(), eval_mode(model):
        p_full = _probs(model, batch).gather(1, y.unsqueeze(1)).squeeze(1)  # (B,)
        for q in bins:
            top = rank < _bin_sizes(n, q).unsqueeze(1)  # (B, T)
            kw = dict(intervention=intervention, pad_token_id=pad, replace_id=replace_id)
            p_without = _probs(model, remove_tokens(batch, top, **kw)).gather(1, y.unsqueeze(1)).squeeze(1)
            p_only = _probs(model, remove_tokens(batch, content & ~top, **kw)).gather(1, y.unsqueeze(1)).squeeze(1)
            comp.append(p_full - p_without)
            suff.append(p_full - p_only)
    comp_t, suff_t = torch.stack(comp, dim=1), torch.stack(suff, dim=1)
    return {
        "comprehensiveness": comp_t,
        "sufficiency": suff_t,
        "aopc_comprehensiveness": comp_t.mean(dim=1),
        "aopc_sufficiency": suff_t.mean(dim=1),
    }


def comprehensiveness(model: nn.Module, batch: Batch, scores: Tensor, **kwargs) -> Tensor:
    """AOPC comprehensiveness ``(B,)`` (higher = more faithful); arguments of :func:`erasure_curves`."""
    return erasure_curves(model, batch, scores, **kwargs)["aopc_comprehensiveness"]


def sufficiency(model: nn.Module, batch: Batch, scores: Tensor, **kwargs) -> Tensor:
    """AOPC sufficiency ``(B,)`` (lower = more faithful); arguments of :func:`erasure_curves`."""
    return erasure_curves(model, batch, scores, **kwargs)["aopc_sufficiency"]


# ------------------------------------------------------ weak learner (sec. 5)
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
        method: a name in :data:`xaicore.attribution.ATTRIBUTION_METHODS` or a
            function ``(model, batch, **opts) -> (B, T)``.
        **opts: passed to the method.

    Returns:
        ``[(batch, scores (B, T) detached on CPU-or-batch device), ...]``.
    """
    if isinstance(method, str):
        from xaicore.attribution import ATTRIBUTION_METHODS

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


# ------------------------------------------------------------ shuffle (sec. 6)
def total_variation(p: Tensor, q: Tensor) -> Tensor:
    """``TVD(p, q) = 1/2 sum_i |p_i - q_i|`` over the last dim."""
    return 0.5 * (p - q).abs().sum(dim=-1)


def _permute_among(values: Tensor, mask: Tensor, n_permutations: int, generator: Optional[torch.Generator]) -> Tensor:
    """``(P, B, T)``: ``values`` ``(B, T)`` randomly permuted among each example's ``mask`` positions."""
    P, (B, T) = n_permutations, values.shape
    keys = torch.rand((P, B, T), generator=generator).to(values.device)
    keys = keys.masked_fill(~mask.unsqueeze(0), float("inf"))
    src = keys.argsort(dim=-1)  # masked positions first, in random order
    dst = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices.unsqueeze(0).expand(P, B, T)
    vals = values.unsqueeze(0).expand(P, B, T).gather(-1, src)
    return torch.zeros_like(vals).scatter(-1, dst, vals)


def shuffle_tvd(
    model: nn.Module,
    batch: Batch,
    scores: Tensor,
    *,
    n_permutations: int = 100,
    generator: Optional[torch.Generator] = None,
    chunk_size: Optional[int] = None,
) -> Tensor:
    """Median TVD between outputs with the feature map and with a shuffled feature map (sec. 6).

    faithfulness-evaluation.txt section 6 (after Jain & Wallace 2019's
    attention permutation): ``p`` = output distribution when ``scores`` weight
    the tokens, ``q`` = the same with ``scores`` randomly permuted among the
    example's content tokens; ``TVD(p, q) = 1/2 sum_i |p_i - q_i|``; the
    median over ``n_permutations`` permutations is the example's score (the
    mean over a dataset is left to the caller, e.g. :func:`nanmean`). Higher =
    the model relies more on where the map puts its weight.

    How the map weights the tokens depends on ``model``:

    * :class:`WeakLearner` (the paper's setting): the map is its pooling
      weights (normalised inside the learner).
    * a model with additive attention (``attend``, i.e.
      :class:`~xaicore.models.AttentionLSTMClassifier`): the map replaces the
      attention distribution, ``a = |s| / sum |s|`` over content tokens
      (a zero map -> uniform), injected exactly through
      ``score_perturb = log(a) - a~`` (floor ``1e-30``); the BiLSTM is run
      once and only attention + decoder are re-run per permutation. With
      ``scores`` = the model's own attention, ``p`` is its normal output.

    Args:
        model: :class:`WeakLearner` or a model with ``attend``.
        batch: inputs ``(B, T)``.
        scores: feature map ``(B, T)``.
        n_permutations: >= 1 (paper: 100).
        generator: CPU ``torch.Generator`` for the permutations (default: the
            global RNG).
        chunk_size: permutations per forward pass (default: ``max(1, 4096 // B)``).

    Returns:
        ``(B,)`` float median TVD (the mean of the two middle values for an
        even count); 0 for examples with fewer than two content tokens.

    Raises:
        ValueError: the model offers no way to set the token weights.
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    content = batch.content_mask
    B = batch.size
    chunk = chunk_size or max(1, 4096 // max(1, B))
    raw = torch.where(content, scores.detach().float(), torch.zeros_like(scores, dtype=torch.float))
    perms = _permute_among(raw, content, n_permutations, generator)  # (P, B, T)
    tvds = []
    with torch.no_grad(), eval_mode(model):
        if isinstance(model, WeakLearner):
            def run(weights: Tensor, reps: int) -> Tensor:  # weights (reps*B, T)
                ids, mask = batch.input_ids.repeat(reps, 1), batch.attention_mask.repeat(reps, 1)
                return torch.softmax(model(ids, mask, weights=weights).logits.float(), dim=-1)
        elif hasattr(model, "attend") and hasattr(model, "encode"):
            mask = batch.attention_mask.bool()
            hidden = model.encode(model.embed(batch.input_ids), mask)  # (B, T, 2H)
            base_scores = model.attention_scores(hidden, mask)

            def run(weights: Tensor, reps: int) -> Tensor:
                a = normalize_feature_map(weights, content.repeat(reps, 1), norm="l1", absolute=True)
                perturb = torch.log(a.clamp_min(1e-30)) - base_scores.repeat(reps, 1)
                out = model.attend(
                    hidden.repeat(reps, 1, 1), mask.repeat(reps, 1),
                    scores=base_scores.repeat(reps, 1), score_perturb=perturb,
                )
                return torch.softmax(out.logits.float(), dim=-1)
        else:
            raise ValueError(
                f"shuffle_tvd needs a WeakLearner or a model with additive attention, not {type(model).__name__}"
            )
        p = run(raw, 1)  # (B, C)
        for start in range(0, n_permutations, chunk):
            block = perms[start : start + chunk]  # (P', B, T)
            reps = block.shape[0]
            q = run(block.reshape(reps * B, -1), reps).reshape(reps, B, -1)
            tvds.append(total_variation(p.unsqueeze(0), q))
    tvd = torch.cat(tvds, dim=0)  # (P, B)
    return torch.quantile(tvd, 0.5, dim=0)


# --------------------------------------------------------------- agreement
def _rows(mask: Tensor) -> Iterable[tuple[int, np.ndarray]]:
    m = mask.bool().cpu().numpy()
    for i in range(m.shape[0]):
        yield i, m[i]


def rank_agreement(a: Tensor, b: Tensor, mask: Tensor) -> dict[str, float]:
    """Mean per-example Kendall tau-b and Pearson r between two maps over ``mask`` tokens.

    Examples with fewer than two tokens or a constant map are skipped.

    Args:
        a, b: ``(B, T)`` feature maps.
        mask: ``(B, T)`` bool, tokens compared (e.g. ``batch.content_mask``).

    Returns:
        ``{"kendall_tau": float, "pearson": float, "n_examples": int}``
        (NaN means when no example qualifies).
    """
    from scipy.stats import kendalltau

    A, Bm = a.detach().double().cpu().numpy(), b.detach().double().cpu().numpy()
    taus, rs = [], []
    for i, m in _rows(mask):
        x, y = A[i][m], Bm[i][m]
        if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        taus.append(float(kendalltau(x, y).statistic))
        rs.append(float(np.corrcoef(x, y)[0, 1]))
    return {
        "kendall_tau": float(np.mean(taus)) if taus else float("nan"),
        "pearson": float(np.mean(rs)) if rs else float("nan"),
        "n_examples": len(taus),
    }


def rationale_agreement(scores: Tensor, rationale_mask: Tensor, mask: Tensor) -> dict[str, float]:
    """Plausibility: mean per-example AUPRC (average precision) and ROC-AUC of ``scores`` against a rationale.

    DeYoung et al. (2020)'s soft-score metric. Examples whose rationale is
    constant over ``mask`` (no evidence token, or all tokens evidence) are
    skipped.

    Args:
        scores: ``(B, T)`` feature map (higher = more important).
        rationale_mask: ``(B, T)`` bool evidence tokens.
        mask: ``(B, T)`` bool, tokens scored (e.g. ``batch.content_mask``).

    Returns:
        ``{"auprc": float, "roc_auc": float, "n_examples": int}``.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    S = scores.detach().double().cpu().numpy()
    R = rationale_mask.bool().cpu().numpy()
    aps, aucs = [], []
    for i, m in _rows(mask):
        y, s = R[i][m], S[i][m]
        if y.size == 0 or y.all() or not y.any():
            continue
        aps.append(float(average_precision_score(y, s)))
        aucs.append(float(roc_auc_score(y, s)))
    return {
        "auprc": float(np.mean(aps)) if aps else float("nan"),
        "roc_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "n_examples": len(aps),
    }


def precision_at_k(scores: Tensor, rationale_mask: Tensor, mask: Tensor, k: Optional[int] = None) -> Tensor:
    """Fraction of the top-``k`` tokens (by ``scores``, over ``mask``) that are rationale tokens.

    Args:
        scores: ``(B, T)`` feature map.
        rationale_mask: ``(B, T)`` bool evidence tokens.
        mask: ``(B, T)`` bool, candidate tokens.
        k: tokens per example (>= 1), clipped to the example's number of
            candidates; ``None`` = the example's number of rationale tokens
            (R-precision).

    Returns:
        ``(B,)`` float; NaN where ``k`` is 0 (no candidates, or ``k=None`` and
        no rationale token). Ties are broken by position.
    """
    m = mask.bool()
    rat = rationale_mask.bool() & m
    n = m.sum(dim=1)
    if k is None:
        kk = rat.sum(dim=1)
    else:
        if k < 1:
            raise ValueError(f"k must be >= 1 or None, got {k}")
        kk = torch.clamp(n, max=int(k))
    top = descending_rank(scores, m) < kk.unsqueeze(1)
    hits = (top & rat).sum(dim=1).float()
    out = hits / kk.float().clamp_min(1)
    return out.masked_fill(kk == 0, float("nan"))


def nanmean(values: Union[Tensor, Iterable[Tensor]]) -> float:
    """Mean of all non-NaN entries of a tensor or of several (e.g. per-batch ``(B,)`` results)."""
    t = values if isinstance(values, Tensor) else torch.cat([v.reshape(-1).float() for v in values])
    t = t.reshape(-1).float()
    t = t[~torch.isnan(t)]
    return float(t.mean()) if t.numel() else float("nan")
