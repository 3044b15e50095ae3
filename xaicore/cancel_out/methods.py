"""Cancel-out: the one place where "remove a token's influence from the input" is defined.

cancel-out.txt (section 2) compares ways to cancel token ``i`` out of ``x``; every
faithfulness metric (deletion, comprehensiveness, sufficiency), leave-one-out
occlusion, restorability (:mod:`xaicore.cancel_out.restorability`) and debiased training
use the methods of :data:`CANCEL_OUT_METHODS`:

* ``pad`` - the id is replaced by PAD (or ``replace_id``); the position stays
  in the attention mask (the model sees a PAD token there).
* ``delete`` - the token is removed and the rest shifted left (padding appended).
* ``zero_vector`` - the token's *word* embedding is replaced by zeros and fed as
  ``inputs_embeds``; position/segment embeddings (and LayerNorm) are still
  applied by the model (HF) / the BiLSTM reads a zero vector.
* ``mask_token`` - the id is replaced by ``[MASK]`` / ``<mask>`` (models with a
  mask token only).
* ``attention_mask`` - the position is set False in the attention mask: no
  position attends to it (HF); for the BiLSTM it is excluded from the attention
  softmax but still read by the LSTM (its ``attention_exclude`` argument).
* ``weighted_marginalize`` (eq. 1, Kim et al. 2020) - the removed tokens are
  [MASK]ed, the masked LM ``p_L`` proposes the top-``k`` candidates ``x'`` for
  the first removed position, and the model's output distribution is
  ``sum_x' w(x') p_M(y | x', x_-i)`` with ``w(x') = p_L(x' | x_-i)``
  **renormalised over the k candidates** (so the result is a distribution; the
  paper's unnormalised sum differs by the constant factor ``sum_top-k p_L``,
  which changes no argmax).
* ``uniform_marginalize`` (section 2.2) - the same candidates, ``w = 1/k``.

Several removed tokens in one example (deletion, sufficiency, the BIOS gender
words): the marginalize methods fill them as section 4.1 does - the ``k``
candidates of the *first* removed position, then every further removed
position left to right with the MLM's top-1 token given the fillings so far
(greedy, one MLM pass per further position, all rows batched); the weight of a
filled sentence is that of its first candidate. With ``k = 2`` and
``uniform_marginalize`` this is exactly 4.1's two sentences ``s1, s2``.
Candidates never include the tokenizer's special tokens (``exclude_ids``).

Only content tokens (:attr:`Batch.content_mask`) are ever cancelled: special
tokens and padding are untouched. Every method returns a :class:`Cancelled`
with ``K`` rows per example (``K = k`` for the marginalize methods, else 1),
example-major (row ``b * K + j``), so a batch's ``B * k`` candidate inputs run
as one forward pass (:func:`cancel_out_log_probs`).

Registry: each method is a :class:`CancelOutMethod` subclass with its own ``apply`` and declared
capabilities (``needs_mlm``, ``needs_mask_token``, ``needs_model``, ``needs_pad_id``,
``keeps_positions``), registered in :data:`CANCEL_OUT_REGISTRY` (:func:`register_cancel_out`).
The subsets other modules need are derived from the capabilities (:func:`cancel_out_methods`):
:data:`MLM_METHODS` (``needs_mlm``), :data:`MASK_METHODS` (``needs_mask_token``),
:data:`LSTM_METHODS` (no mask token needed: meaningful for the word-level BiLSTM) and the
restorability methods (``keeps_positions``). docs/extending.md adds one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from xaicore.models.masked_lm import position_logits
from xaicore.models.model_utils import eval_mode, resolve_mask_token_id, resolve_pad_token_id
from xaicore.models.protocol import TextClassifier, capability, forward_batch
from xaicore.types import Batch

__all__ = [
    "CANCEL_OUT_METHODS",
    "CANCEL_OUT_REGISTRY",
    "MLM_METHODS",
    "MASK_METHODS",
    "LSTM_METHODS",
    "CancelOutMethod",
    "cancel_out_methods",
    "register_cancel_out",
    "Cancelled",
    "CancelOut",
    "make_cancel_out",
    "cancel_out_log_probs",
    "cancel_out_probs",
    "word_embeddings",
    "propose_candidates",
    "cancel_out_loss",
]

#: the old ``intervention=`` names of :func:`xaicore.faithfulness.remove_tokens`
LEGACY_NAMES = {"mask": "attention_mask"}


@dataclass(frozen=True)
class Cancelled:
    """A cancelled batch: ``K`` input rows per example and the weights that combine their outputs.

    Attributes:
        batch: ``(B * K, T)`` inputs, row ``b * K + j`` is variant ``j`` of example ``b``.
        weights: ``(B, K)`` float, each row sums to 1.
        inputs_embeds: ``(B * K, T, E)`` word embeddings to feed instead of the ids (``zero_vector``), or None.
        attention_exclude: ``(B * K, T)`` bool for the BiLSTM's ``attention_mask`` method (read by the
            LSTM, excluded from its attention softmax), or None.
    """

    batch: Batch
    weights: Tensor
    inputs_embeds: Optional[Tensor] = None
    attention_exclude: Optional[Tensor] = None

    @property
    def k(self) -> int:
        return int(self.weights.shape[1])

    def forward_kwargs(self) -> dict:
        kw = {} if self.inputs_embeds is None else {"inputs_embeds": self.inputs_embeds}
        if self.attention_exclude is not None:
            kw["attention_exclude"] = self.attention_exclude
        return kw


def word_embeddings(model: nn.Module, input_ids: Tensor) -> Tensor:
    """Word-embedding lookup ``(B, T, E)`` (before position embeddings) of a classifier wrapper or an HF model."""
    if isinstance(model, TextClassifier):
        return model.embed(input_ids)
    return model.get_input_embeddings()(input_ids)


def _vocab_size(model: nn.Module) -> Optional[int]:
    for getter in (lambda: model.model.get_input_embeddings(), lambda: model.get_input_embeddings(),
                   lambda: model.embedding):
        try:
            emb = getter()
        except AttributeError:
            continue
        if isinstance(emb, nn.Embedding):
            return int(emb.num_embeddings)
    return None


class CancelOutMethod:
    """A way to cancel tokens out of a batch: declared capabilities and :meth:`apply`.

    Capabilities (class attributes):
        name: the registry / config name.
        needs_mlm: proposes ``k`` candidates with a masked LM (``CancelOut.mlm``): ``k`` rows per example.
        needs_mask_token: writes a [MASK] id (models whose vocabulary has one: not the word-level BiLSTM).
        needs_model: ``apply`` needs the model itself (its embeddings, mask id, ...).
        needs_pad_id: needs the PAD id (from the model, or ``CancelOut.pad_token_id`` without a model).
        keeps_positions: every position stays where it was (restorability reads the removed positions).
    """

    name: str = ""
    needs_mlm: bool = False
    needs_mask_token: bool = False
    needs_model: bool = False
    needs_pad_id: bool = False
    keeps_positions: bool = True

    def apply(self, opts: "CancelOut", model: Optional[nn.Module], batch: Batch, remove: Tensor) -> Cancelled:
        """Cancel ``remove`` (``(B, T)`` bool, already restricted to content tokens) out of ``batch``."""
        raise NotImplementedError


def _ones(batch: Batch) -> Tensor:
    return torch.ones((batch.size, 1), dtype=torch.float, device=batch.input_ids.device)


class PadToken(CancelOutMethod):
    """``pad``: the id is replaced by PAD (or ``replace_id``)."""

    name = "pad"
    needs_pad_id = True

    def apply(self, opts, model, batch, remove):
        fill = resolve_pad_token_id(model, opts.pad_token_id) if opts.replace_id is None else opts.replace_id
        return Cancelled(batch.replace(input_ids=batch.input_ids.masked_fill(remove, int(fill))), _ones(batch))


class DeleteToken(CancelOutMethod):
    """``delete``: the token is removed and the rest shifted left."""

    name = "delete"
    needs_pad_id = True
    keeps_positions = False

    def apply(self, opts, model, batch, remove):
        return Cancelled(_delete(batch, remove, resolve_pad_token_id(model, opts.pad_token_id)), _ones(batch))


class ZeroVector(CancelOutMethod):
    """``zero_vector``: the word embedding is replaced by zeros (fed as ``inputs_embeds``)."""

    name = "zero_vector"
    needs_model = True

    def apply(self, opts, model, batch, remove):
        emb = word_embeddings(model, batch.input_ids)  # (B, T, E)
        return Cancelled(batch, _ones(batch), inputs_embeds=emb.masked_fill(remove.unsqueeze(-1), 0.0))


class MaskToken(CancelOutMethod):
    """``mask_token``: the id is replaced by [MASK]."""

    name = "mask_token"
    needs_mask_token = True
    needs_model = True

    def apply(self, opts, model, batch, remove):
        fill = resolve_mask_token_id(model, opts.mask_token_id)
        return Cancelled(batch.replace(input_ids=batch.input_ids.masked_fill(remove, int(fill))), _ones(batch))


class AttentionMask(CancelOutMethod):
    """``attention_mask``: no position attends to the token (models with additive attention:
    excluded from the attention softmax only, ``attention_exclude``)."""

    name = "attention_mask"

    def apply(self, opts, model, batch, remove):
        if capability(model, "has_attention"):
            return Cancelled(batch, _ones(batch), attention_exclude=remove)
        return Cancelled(batch.replace(attention_mask=batch.attention_mask.bool() & ~remove), _ones(batch))


class Marginalize(CancelOutMethod):
    """``weighted_marginalize`` / ``uniform_marginalize``: the MLM's ``k`` candidates, weighted by ``weighting``."""

    needs_mlm = True
    needs_mask_token = True
    needs_model = True

    def __init__(self, name: str, weighting: str) -> None:
        self.name, self.weighting = name, weighting

    def apply(self, opts, model, batch, remove):
        ids, weights = propose_candidates(
            opts.mlm, batch, remove, k=opts.k, mask_token_id=resolve_mask_token_id(model, opts.mask_token_id),
            exclude_ids=opts.exclude_ids, weighting=self.weighting, chunk_size=opts.chunk_size,
        )
        return Cancelled(_repeat(batch, opts.k).replace(input_ids=ids), weights)


#: every registered cancel-out method by name (:func:`register_cancel_out`)
CANCEL_OUT_REGISTRY: dict[str, CancelOutMethod] = {}


def register_cancel_out(method: CancelOutMethod) -> CancelOutMethod:
    """Add ``method`` (an instance) to :data:`CANCEL_OUT_REGISTRY`; a name may be registered once."""
    if not method.name or method.name in CANCEL_OUT_REGISTRY or method.name in LEGACY_NAMES:
        raise ValueError(f"cancel-out method {method.name!r} is empty or already registered")
    CANCEL_OUT_REGISTRY[method.name] = method
    return method


for _method in (PadToken(), DeleteToken(), ZeroVector(), MaskToken(), AttentionMask(),
                Marginalize("weighted_marginalize", "weighted"), Marginalize("uniform_marginalize", "uniform")):
    register_cancel_out(_method)


def cancel_out_methods(**capabilities: bool) -> tuple[str, ...]:
    """Names of the registered methods whose capabilities equal ``capabilities``
    (e.g. ``cancel_out_methods(needs_mlm=True)``), in registration order; all without arguments."""
    for key in capabilities:
        if not hasattr(CancelOutMethod, key) or key == "name":
            raise ValueError(f"unknown cancel-out capability {key!r}")
    return tuple(name for name, m in CANCEL_OUT_REGISTRY.items()
                 if all(getattr(m, key) == value for key, value in capabilities.items()))


#: the built-in methods and their subsets (derived from the capabilities; a later registration
#: is listed by :func:`cancel_out_methods`)
CANCEL_OUT_METHODS = cancel_out_methods()
#: methods that need a masked LM (``mlm=``)
MLM_METHODS = cancel_out_methods(needs_mlm=True)
#: methods that need a mask token
MASK_METHODS = cancel_out_methods(needs_mask_token=True)
#: methods with a meaning for the word-level BiLSTM classifier (no [MASK], no MLM sharing its vocabulary)
LSTM_METHODS = cancel_out_methods(needs_mask_token=False)


@dataclass(frozen=True)
class CancelOut:
    """One cancel-out method with its options (see module docstring).

    Attributes:
        name: a :data:`CANCEL_OUT_REGISTRY` name (``"mask"`` is accepted for ``attention_mask``).
        k: marginalization candidates (>= 1; marginalize methods only).
        mlm: the masked LM ``p_L`` (an HF ``*ForMaskedLM`` sharing the model's tokenizer), marginalize only.
        mask_token_id: [MASK] id (default: from the model, see :func:`xaicore.models.model_utils.resolve_mask_token_id`).
        pad_token_id: PAD id (default: from the model).
        replace_id: ``pad`` only: the id written instead of PAD (e.g. UNK).
        exclude_ids: ids never proposed as candidates (the tokenizer's special ids).
        chunk_size: rows per MLM forward pass when proposing.
    """

    name: str
    k: int = 10
    mlm: Optional[nn.Module] = field(default=None, compare=False, repr=False)
    mask_token_id: Optional[int] = None
    pad_token_id: Optional[int] = None
    replace_id: Optional[int] = None
    exclude_ids: tuple = ()
    chunk_size: int = 512

    def __post_init__(self) -> None:
        name = LEGACY_NAMES.get(self.name, self.name)
        object.__setattr__(self, "name", name)
        if name not in CANCEL_OUT_REGISTRY:
            raise ValueError(f"unknown cancel-out method {self.name!r}; choose one of {', '.join(cancel_out_methods())}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k (marginalization candidates) must be an integer >= 1, got {self.k!r}")
        if self.method.needs_mlm and self.mlm is None:
            raise ValueError(f"{name} needs a masked LM (mlm=...) to propose its k candidates")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")

    @property
    def method(self) -> CancelOutMethod:
        """The registered :class:`CancelOutMethod` (its capabilities and ``apply``)."""
        return CANCEL_OUT_REGISTRY[self.name]

    @property
    def is_default(self) -> bool:
        return self.name == "pad" and self.replace_id is None

    # ---------------------------------------------------------------- checks
    def check(self, model: nn.Module) -> None:
        """Raise ``ValueError`` when this method has no meaning for ``model``."""
        m = self.method
        if model is None:
            if m.needs_model or (m.needs_pad_id and self.pad_token_id is None):
                raise ValueError(f"{self.name} needs the model (or pad_token_id / mask_token_id)")
            return
        if m.needs_mask_token:
            resolve_mask_token_id(model, self.mask_token_id)
            if capability(model, "word_level"):
                raise ValueError(f"{self.name} has no meaning for the word-level AttentionLSTMClassifier "
                                 f"(no mask token / MLM vocabulary); use one of {', '.join(LSTM_METHODS)}")
        if m.needs_mlm:
            mv, cv = _vocab_size(self.mlm), _vocab_size(model)
            if mv is not None and cv is not None and mv != cv:
                raise ValueError(f"{self.name}: the masked LM's vocabulary ({mv}) differs from the model's ({cv}); "
                                 "they must share one tokenizer")

    # ----------------------------------------------------------------- apply
    def apply(self, model: Optional[nn.Module], batch: Batch, remove: Tensor) -> Cancelled:
        """Cancel ``remove & batch.content_mask`` (``(B, T)`` bool) out of ``batch`` for ``model``.

        ``model`` may be None for ``pad``/``delete`` (with ``pad_token_id``) and ``attention_mask``.
        """
        self.check(model)
        return self.method.apply(self, model, batch, remove.bool() & batch.content_mask)


def make_cancel_out(name: Union[str, CancelOut], **options) -> CancelOut:
    """A :class:`CancelOut` from a registry name (or the instance itself); ``options`` as its attributes."""
    if isinstance(name, CancelOut):
        return name
    return CancelOut(name, **options)


def _repeat(batch: Batch, k: int) -> Batch:
    """Each row repeated ``k`` times, example-major."""
    rep = lambda x: None if x is None else x.repeat_interleave(k, dim=0)  # noqa: E731
    return Batch(input_ids=rep(batch.input_ids), attention_mask=rep(batch.attention_mask), labels=rep(batch.labels),
                 token_type_ids=rep(batch.token_type_ids), special_tokens_mask=rep(batch.special_tokens_mask),
                 rationale_mask=rep(batch.rationale_mask), index=rep(batch.index))


def _delete(batch: Batch, remove: Tensor, pad_token_id: int) -> Batch:
    keep = batch.attention_mask.bool() & ~remove
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices  # kept tokens first, in order
    new_attention = keep.gather(1, order)
    shift = lambda x: None if x is None else x.gather(1, order)  # noqa: E731
    types, special, rationale = shift(batch.token_type_ids), shift(batch.special_tokens_mask), shift(batch.rationale_mask)
    return batch.replace(
        input_ids=shift(batch.input_ids).masked_fill(~new_attention, int(pad_token_id)),
        attention_mask=new_attention,
        token_type_ids=None if types is None else types.masked_fill(~new_attention, 0),
        special_tokens_mask=None if special is None else special.bool() & new_attention,
        rationale_mask=None if rationale is None else rationale.bool() & new_attention,
    )


def _mlm_probs_at(mlm: nn.Module, ids: Tensor, attention: Tensor, token_types: Optional[Tensor], positions: Tensor,
                  exclude: Optional[Tensor], chunk_size: int) -> Tensor:
    """``(N, V)`` MLM probabilities at one position per row, excluded ids set to 0 (not renormalised)."""
    out = []
    for s in range(0, ids.shape[0], chunk_size):
        sl = slice(s, s + chunk_size)
        logits = position_logits(mlm, ids[sl], attention[sl], positions[sl],
                                 token_type_ids=None if token_types is None else token_types[sl]).float()
        p = torch.softmax(logits, dim=-1)
        if exclude is not None:
            p = p.masked_fill(exclude.unsqueeze(0), 0.0)
        out.append(p)
    return torch.cat(out, dim=0)


def propose_candidates(
    mlm: nn.Module,
    batch: Batch,
    remove: Tensor,
    *,
    k: int,
    mask_token_id: int,
    weighting: str = "uniform",
    exclude_ids: Sequence[int] = (),
    chunk_size: int = 512,
) -> tuple[Tensor, Tensor]:
    """Fill the removed positions with the MLM's candidates (module docstring: first position top-k, rest greedy).

    Args:
        mlm: HF masked LM (run in eval mode, no gradients).
        batch: ``(B, T)``.
        remove: ``(B, T)`` bool, positions to fill (already restricted to content tokens).
        k: candidates for the first removed position.
        mask_token_id: [MASK] id written at every removed position before proposing.
        weighting: ``"weighted"`` (``p_L`` of the first candidate, renormalised over the k) or ``"uniform"`` (1/k).
        exclude_ids: never proposed (special tokens).

    Returns:
        ``ids`` ``(B * k, T)`` (row ``b * k + j``: example ``b`` with candidate ``j``) and ``weights`` ``(B, k)``.
        An example with nothing removed gets ``k`` copies of itself and uniform weights.
    """
    if weighting not in ("weighted", "uniform"):
        raise ValueError(f"weighting must be 'weighted' or 'uniform', got {weighting!r}")
    remove = remove.bool()
    ids = batch.input_ids.masked_fill(remove, int(mask_token_id))  # (B, T)
    B, T = ids.shape
    device = ids.device
    attention = batch.attention_mask.bool()
    vocab = _vocab_size(mlm)
    exclude = None
    if exclude_ids and vocab is not None:
        exclude = torch.zeros(vocab, dtype=torch.bool, device=device)
        exclude[torch.tensor([i for i in exclude_ids if 0 <= i < vocab], dtype=torch.long, device=device)] = True
    if vocab is not None and k > vocab - (0 if exclude is None else int(exclude.sum())):
        raise ValueError(f"k={k} exceeds the number of candidate tokens of the masked LM")
    has = remove.any(dim=1)  # (B,)
    t = torch.arange(T, device=device)
    first = torch.where(remove, t, T).min(dim=1).values.clamp(max=T - 1)  # (B,)
    weights = torch.full((B, k), 1.0 / k, device=device)
    out = ids.repeat_interleave(k, dim=0)  # (B*k, T)
    with torch.no_grad(), eval_mode(mlm):
        rows = has.nonzero().squeeze(1)
        if rows.numel():
            tt = batch.token_type_ids
            p = _mlm_probs_at(mlm, ids[rows], attention[rows], None if tt is None else tt[rows], first[rows],
                              exclude, chunk_size)
            top_p, top_i = p.topk(k, dim=-1)  # (R, k)
            if weighting == "weighted":
                weights[rows] = top_p / top_p.sum(dim=1, keepdim=True).clamp_min(1e-30)
            flat = (rows.unsqueeze(1) * k + torch.arange(k, device=device)).reshape(-1)  # (R*k,)
            out[flat, first[rows].repeat_interleave(k)] = top_i.reshape(-1)
            # greedy left-to-right filling of the remaining removed positions
            remaining = remove.repeat_interleave(k, dim=0)
            remaining[torch.arange(B * k, device=device), first.repeat_interleave(k)] = False
            remaining &= has.repeat_interleave(k).unsqueeze(1)
            att_k = attention.repeat_interleave(k, dim=0)
            tt_k = None if tt is None else tt.repeat_interleave(k, dim=0)
            while bool(remaining.any()):
                act = remaining.any(dim=1).nonzero().squeeze(1)
                pos = torch.where(remaining[act], t, T).min(dim=1).values
                p = _mlm_probs_at(mlm, out[act], att_k[act], None if tt_k is None else tt_k[act], pos, exclude,
                                  chunk_size)
                out[act, pos] = p.argmax(dim=-1)
                remaining[act, pos] = False
    return out, weights


def cancel_out_log_probs(
    model: nn.Module,
    batch: Batch,
    remove: Tensor,
    method: Union[str, CancelOut] = "pad",
    **forward_kwargs,
) -> Tensor:
    """``(B, C)`` log of ``sum_j w_j softmax(model(variant_j))``: the model's output with ``remove`` cancelled out.

    One forward pass over all ``B * K`` variant rows. Differentiable w.r.t. the
    model (the MLM proposals are not), so it also serves as a training
    objective (section 4.1: predicted probabilities averaged before the loss).
    Runs in the model's current train/eval mode and grad mode.
    """
    c = make_cancel_out(method).apply(model, batch, remove)
    logits = forward_batch(model, c.batch, **c.forward_kwargs(), **forward_kwargs).logits.float()  # (B*K, C)
    logp = torch.log_softmax(logits, dim=-1).view(batch.size, c.k, -1)  # (B, K, C)
    return torch.logsumexp(logp + torch.log(c.weights.clamp_min(1e-30)).unsqueeze(-1), dim=1)


def cancel_out_probs(model: nn.Module, batch: Batch, remove: Tensor, method: Union[str, CancelOut] = "pad") -> Tensor:
    """``(B, C)`` output distribution with ``remove`` cancelled (eval mode, no gradients)."""
    with torch.no_grad(), eval_mode(model):
        return cancel_out_log_probs(model, batch, remove, method).exp()


def cancel_out_loss(method: CancelOut, remove: Optional[Callable[[Batch], Optional[Tensor]]] = None):
    """A :class:`xaicore.training.Trainer` ``loss_fn``: cross-entropy of the cancelled-out output.

    ``loss = -log sum_j w_j p_M(y | variant_j)`` (for ``uniform_marginalize`` with
    ``k = 2``: section 4.1's two filled sentences, predicted probabilities
    averaged before the loss). ``remove(batch) -> (B, T) bool`` gives the tokens to
    cancel; default ``batch.rationale_mask`` (the BIOS gender words); a batch
    without it is trained on as is.
    """
    pick = remove or (lambda b: b.rationale_mask)

    def loss_fn(model: nn.Module, batch: Batch):
        if batch.labels is None:
            raise ValueError("cancel-out training needs labels")
        mask = pick(batch)
        if mask is None:
            mask = torch.zeros_like(batch.input_ids, dtype=torch.bool)
        logp = cancel_out_log_probs(model, batch, mask.bool(), method)  # (B, C)
        ce = torch.nn.functional.nll_loss(logp, batch.labels)
        return ce, {"ce": float(ce.detach()), "reg": 0.0,
                    "cancelled": float((mask.bool() & batch.content_mask).sum(1).float().mean())}

    return loss_fn
