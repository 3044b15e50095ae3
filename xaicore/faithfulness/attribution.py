"""Token attributions ("feature maps") for text classifiers.

Every method has the same signature::

    attribute(model, batch, *, target=None, **opts) -> Tensor  # (B, T)

and the same guarantees:

* ``target`` is the class whose output is explained: ``None`` (default) = the
  class the model *predicts* for each example (faithfulness-evaluation.txt,
  section 5: maps are generated for the predicted label, not the gold one), an
  ``int`` (same class for every example) or a ``(B,)`` long tensor.
* The result is ``(B, T)`` float, exactly ``0`` on padding and special tokens
  (positions where :attr:`Batch.content_mask` is False).
* The model is run in eval mode (dropout off) and every module's previous
  train/eval flag is restored afterwards, even on error.
* Gradients are taken with :func:`torch.autograd.grad` (directly or through
  captum) under :func:`torch.enable_grad`, so the caller's parameter ``.grad``
  fields are never written and the methods work inside ``torch.no_grad()``.

Gradient methods differentiate the model output w.r.t. the *word embeddings*
``e = model.embed(input_ids)`` ``(B, T, E)``, fed back through the
``inputs_embeds`` keyword (:class:`~xaicore.models.AttentionLSTMClassifier`:
the LSTM input; :class:`~xaicore.models.TransformerClassifier`: the word
embedding lookup before position/type embeddings and LayerNorm). Per-dimension
attributions ``(B, T, E)`` are reduced to token scores with ``reduction``:

* ``"sum"`` - ``sum_e A[b, t, e]`` (signed; the usual token attribution of
  Input x Gradient and Integrated Gradients, which then satisfies IG's
  completeness: token scores sum to ``f(x) - f(x')``);
* ``"l2"`` - ``||A[b, t, :]||_2`` (non-negative; the usual token saliency);
* ``"abs_sum"`` - ``sum_e |A[b, t, e]|`` (non-negative, L1 norm).

``output`` chooses what is differentiated: ``"logit"`` (default, the
target's pre-softmax score, captum's usual convention), ``"prob"`` (softmax
probability, Jain & Wallace 2019's gradient importance) or ``"log_prob"``.

Registry :data:`ATTRIBUTION_METHODS` (name -> :class:`Attributor`: the function plus declared
capabilities ``needs_embeddings_gradient``, ``needs_attention``, ``signed``, ``takes_cancel_out``,
``path_integral``; :func:`register_attributor` adds one; defaults in brackets):

* ``saliency`` - :func:`saliency`: gradient magnitude, Simonyan et al. (2014)
  [``reduction="l2"``, non-negative].
* ``saliency_signed`` - :func:`saliency_signed`: the raw gradient summed over
  embedding dimensions (captum ``Saliency(abs=False)`` + sum) [signed].
* ``input_x_gradient`` - :func:`input_x_gradient`: ``e * de``, Shrikumar et
  al. (2016) / Kindermans et al. (2016) [``reduction="sum"``, signed].
* ``integrated_gradients`` - :func:`integrated_gradients`: Sundararajan et al. (2017) via captum
  ``IntegratedGradients`` [``reduction="sum"``, zero baseline, 50 Gauss-Legendre steps, signed].
* ``attention`` - :func:`attention_weights`: the additive-attention
  distribution of :class:`~xaicore.models.AttentionLSTMClassifier`
  (Bahdanau et al. 2015; as explanation: Jain & Wallace 2019); ``ValueError``
  for models without a single attention distribution (transformers).
* ``leave_one_out`` - :func:`leave_one_out`: occlusion of one token at a
  time (Li et al. 2016, "Understanding neural networks through
  representation erasure"): drop of the target probability.

The names are the ones used by faithfulness-evaluation.txt's four methods
(Saliency, Input X Gradient, Integrated Gradients, Attention Weights) plus
two extras.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn

from xaicore.cancel_out.methods import CancelOut, cancel_out_log_probs
from xaicore.faithfulness.ig_passes import PassCounter, plan_passes
from xaicore.models.model_utils import eval_mode, index_batch, resolve_pad_token_id
from xaicore.models.protocol import capability, forward_batch
from xaicore.types import Batch

__all__ = [
    "REDUCTIONS",
    "OUTPUTS",
    "IG_METHODS",
    "IG_BASELINES",
    "ATTRIBUTION_METHODS",
    "Attributor",
    "register_attributor",
    "eval_mode",
    "resolve_pad_token_id",
    "resolve_target",
    "reduce_embedding_dim",
    "saliency",
    "saliency_signed",
    "input_x_gradient",
    "integrated_gradients",
    "attention_weights",
    "leave_one_out",
    "attribute",
]

REDUCTIONS = ("sum", "l2", "abs_sum")
OUTPUTS = ("logit", "prob", "log_prob")
IG_METHODS = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")
IG_BASELINES = ("zeros", "pad", "mask")

Target = Union[None, int, Tensor]


# ---------------------------------------------------------------- helpers
def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _model_kwargs(model: nn.Module, detach_attention: bool) -> dict:
    if not detach_attention:
        return {}
    if not capability(model, "has_attention"):
        raise ValueError(f"detach_attention=True needs a model with additive attention, not {type(model).__name__}")
    return {"detach_attention": True}


def _transform(logits: Tensor, output: str) -> Tensor:
    if output == "logit":
        return logits
    if output == "prob":
        return torch.softmax(logits, dim=-1)
    return torch.log_softmax(logits, dim=-1)


def resolve_target(model: nn.Module, batch: Batch, target: Target = None) -> Tensor:
    """``(B,)`` long class ids: ``target`` broadcast, or the model's predictions (eval mode, no grad)."""
    if target is None:
        with torch.no_grad(), eval_mode(model):
            return forward_batch(model, batch).logits.argmax(dim=-1)
    if isinstance(target, numbers.Integral):
        return torch.full((batch.size,), int(target), dtype=torch.long, device=batch.input_ids.device)
    target = torch.as_tensor(target, device=batch.input_ids.device).long().reshape(-1)
    if target.numel() != batch.size:
        raise ValueError(f"target must have {batch.size} entries, got {target.numel()}")
    return target


def reduce_embedding_dim(attr: Tensor, reduction: str) -> Tensor:
    """Token scores ``(B, T)`` from per-dimension attributions ``(B, T, E)``; see module docstring."""
    _check_choice("reduction", reduction, REDUCTIONS)
    if reduction == "sum":
        return attr.sum(dim=-1)
    if reduction == "l2":
        return attr.norm(dim=-1)
    return attr.abs().sum(dim=-1)


def _finish(scores: Tensor, batch: Batch) -> Tensor:
    """Detach, cast to float and zero everything outside the content mask."""
    scores = scores.detach().float()
    return torch.where(batch.content_mask, scores, torch.zeros_like(scores))


def _embedding_forward(model: nn.Module, output: str, kwargs: dict) -> Callable[..., Tensor]:
    """``f(embeds, input_ids, attention_mask, token_type_ids) -> (N, C)`` (captum-compatible forward).

    ``input_ids`` are passed along for models that read them besides
    ``inputs_embeds``; the embeddings are what the model consumes.
    """

    def forward(
        embeds: Tensor, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Optional[Tensor] = None
    ) -> Tensor:
        extra = dict(kwargs)
        if token_type_ids is not None:
            extra["token_type_ids"] = token_type_ids
        logits = model(input_ids, attention_mask, inputs_embeds=embeds, **extra).logits
        return _transform(logits, output)

    return forward


def _embedding_gradient(
    model: nn.Module, batch: Batch, target: Tensor, output: str, detach_attention: bool
) -> tuple[Tensor, Tensor]:
    """``(e, d out[target] / d e)`` both ``(B, T, E)``; model must already be in eval mode."""
    forward = _embedding_forward(model, output, _model_kwargs(model, detach_attention))
    with torch.enable_grad():
        emb = model.embed(batch.input_ids).detach().requires_grad_(True)  # (B, T, E)
        out = forward(emb, batch.input_ids, batch.attention_mask, batch.token_type_ids)  # (B, C)
        chosen = out.gather(1, target.unsqueeze(1)).sum()
        (grad,) = torch.autograd.grad(chosen, emb)
    return emb.detach(), grad


# ------------------------------------------------------------------ methods
def saliency(
    model: nn.Module,
    batch: Batch,
    *,
    target: Target = None,
    reduction: str = "l2",
    output: str = "logit",
    detach_attention: bool = False,
) -> Tensor:
    """Saliency map (Simonyan, Vedaldi & Zisserman 2014): gradient of the target w.r.t. each word embedding.

    For text the gradient of a token is a vector over embedding dimensions;
    its norm is the token's saliency (Li, Chen, Hovy & Jurafsky 2016,
    "Visualizing and understanding neural models in NLP").

    Args:
        model: classifier with ``embed(ids)`` and ``forward(..., inputs_embeds=)``.
        batch: inputs ``(B, T)``.
        target: class to explain (default: predicted class); int or ``(B,)``.
        reduction: ``"l2"`` (default: ``||grad_t||_2``), ``"abs_sum"``
            (``sum_e |grad|``, captum ``Saliency(abs=True)`` summed) or ``"sum"``
            (signed, see :func:`saliency_signed`).
        output: ``"logit"`` (default), ``"prob"`` or ``"log_prob"``.
        detach_attention: LSTM only: pool with detached attention weights so
            the gradient bypasses the attention module (Jain & Wallace 2019).

    Returns:
        ``(B, T)`` float scores, 0 on padding/special tokens.
    """
    _check_choice("reduction", reduction, REDUCTIONS)
    _check_choice("output", output, OUTPUTS)
    target = resolve_target(model, batch, target)
    with eval_mode(model):
        _, grad = _embedding_gradient(model, batch, target, output, detach_attention)
    return _finish(reduce_embedding_dim(grad, reduction), batch)


def saliency_signed(
    model: nn.Module,
    batch: Batch,
    *,
    target: Target = None,
    reduction: str = "sum",
    output: str = "logit",
    detach_attention: bool = False,
) -> Tensor:
    """Signed saliency: the raw gradient (captum ``Saliency(abs=False)``) summed over embedding dims.

    Same arguments as :func:`saliency`, default ``reduction="sum"``. The sum
    is the directional derivative along ``(1, ..., 1)``. Caveat: for models
    that LayerNorm the word embedding before anything else (BERT-style
    :class:`~xaicore.models.TransformerClassifier`) it is identically ~0,
    because LayerNorm is invariant to adding a constant to every dimension;
    use :func:`saliency` (norms) there.

    Returns:
        ``(B, T)`` signed float scores, 0 on padding/special tokens.
    """
    return saliency(model, batch, target=target, reduction=reduction, output=output, detach_attention=detach_attention)


def input_x_gradient(
    model: nn.Module,
    batch: Batch,
    *,
    target: Target = None,
    reduction: str = "sum",
    output: str = "logit",
    detach_attention: bool = False,
) -> Tensor:
    """Input x Gradient (Shrikumar et al. 2016; Kindermans et al. 2016): ``e_t * d out / d e_t``.

    Args:
        model, batch, target, output, detach_attention: see :func:`saliency`.
        reduction: ``"sum"`` (default: ``sum_e e * grad``, signed, the
            first-order Taylor contribution of the token), ``"l2"``,
            ``"abs_sum"``.

    Returns:
        ``(B, T)`` float scores, 0 on padding/special tokens.
    """
    _check_choice("reduction", reduction, REDUCTIONS)
    _check_choice("output", output, OUTPUTS)
    target = resolve_target(model, batch, target)
    with eval_mode(model):
        emb, grad = _embedding_gradient(model, batch, target, output, detach_attention)
    return _finish(reduce_embedding_dim(emb * grad, reduction), batch)


def _baseline_embeddings(
    model: nn.Module,
    batch: Batch,
    emb: Tensor,
    baseline: Union[str, int, Tensor],
    pad_token_id: Optional[int],
    mask_token_id: Optional[int],
) -> Tensor:
    """IG baseline ``(B, T, E)``: the chosen vector on content tokens, the input itself elsewhere."""
    if isinstance(baseline, Tensor):
        base = baseline.to(emb)
        if base.dim() == 1:
            base = base.expand_as(emb)
        if base.shape != emb.shape:
            raise ValueError(f"baseline tensor must have shape (E,) or {tuple(emb.shape)}, got {tuple(base.shape)}")
    else:
        if isinstance(baseline, str):
            _check_choice("baseline", baseline, IG_BASELINES)
            if baseline == "zeros":
                token = None
            elif baseline == "pad":
                token = resolve_pad_token_id(model, pad_token_id)
            else:
                if mask_token_id is None:
                    raise ValueError('baseline="mask" needs mask_token_id (e.g. tokenizer.mask_token_id)')
                token = int(mask_token_id)
        else:
            token = int(baseline)
        if token is None:
            base = torch.zeros_like(emb)
        else:
            with torch.no_grad():
                base = model.embed(torch.full_like(batch.input_ids, token)).to(emb)
    return torch.where(batch.content_mask.unsqueeze(-1), base, emb)


def integrated_gradients(
    model: nn.Module,
    batch: Batch,
    *,
    target: Target = None,
    n_steps: int = 50,
    method: str = "gausslegendre",
    baseline: Union[str, int, Tensor] = "zeros",
    internal_batch_size: Union[None, int, str] = None,
    memory_budget_bytes: Optional[int] = None,
    reduction: str = "sum",
    output: str = "logit",
    pad_token_id: Optional[int] = None,
    mask_token_id: Optional[int] = None,
    detach_attention: bool = False,
    return_delta: bool = False,
    stats: Optional[dict] = None,
) -> Union[Tensor, tuple[Tensor, Tensor]]:
    """Integrated Gradients (Sundararajan, Taly & Yan 2017) over the word embeddings, via captum.

    ``IG_t = (e_t - e'_t) * int_0^1 d out(e' + a (e - e')) / d e_t da``,
    approximated with ``n_steps`` points of ``method``. The baseline ``e'``
    differs from the input only on content tokens: padding and special tokens
    ([CLS], [SEP]) stay at their real embeddings along the whole path, so
    they get exactly zero attribution.

    Args:
        model, batch, target, output, detach_attention: see :func:`saliency`.
        n_steps: number of integration points (>= 1; >= 2 for Riemann rules).
        method: ``"gausslegendre"`` (default, captum's), ``"riemann_left"``,
            ``"riemann_right"``, ``"riemann_middle"`` or ``"riemann_trapezoid"``.
            Note: captum 0.9's trapezoid weights sum to ``(n-1)/n`` (``1/n`` for
            ``1/(n-1)``); the result (and delta) is rescaled by ``n/(n-1)``: the
            textbook rule on ``n`` equispaced points including both ends.
        baseline: ``"zeros"`` (default: the zero vector), ``"pad"`` (the PAD token's embedding;
            equals zeros for the LSTM whose PAD row is zero), ``"mask"`` (the embedding of
            ``mask_token_id``), an ``int`` token id, or a tensor ``(E,)`` / ``(B, T, E)``.
        internal_batch_size: rows per forward/backward pass of the ``B * n_steps``
            expanded inputs (captum). ``None`` = all steps in one pass; ``B`` = one step
            per pass; ``"auto"`` = as many as ``memory_budget_bytes`` (default 1 GiB)
            allows (:mod:`xaicore.faithfulness.ig_passes`). The result does not depend on it.
        reduction: ``"sum"`` (default: signed; token scores then sum to
            ``f(x) - f(x') + delta``), ``"l2"`` or ``"abs_sum"``.
        pad_token_id: PAD id for ``baseline="pad"`` (default: from the model).
        mask_token_id: id for ``baseline="mask"``.
        return_delta: also return captum's convergence delta.
        stats: a dict that receives ``passes`` (counted), ``rows_per_pass``, ``steps_per_pass``.

    Returns:
        ``(B, T)`` float scores, 0 on padding/special tokens; with
        ``return_delta`` the tuple ``(scores, delta)`` where ``delta`` ``(B,)``
        is ``sum_{t,e} IG - (f(x) - f(x'))`` (completeness error; ~0 for enough
        steps).
    """
    from captum.attr import IntegratedGradients

    _check_choice("reduction", reduction, REDUCTIONS)
    _check_choice("output", output, OUTPUTS)
    _check_choice("method", method, IG_METHODS)
    if n_steps < (1 if method == "gausslegendre" else 2):
        raise ValueError(f"n_steps must be >= 1 (gausslegendre) or >= 2 (riemann_*), got {n_steps}")
    target = resolve_target(model, batch, target)
    with eval_mode(model):
        forward = PassCounter(_embedding_forward(model, output, _model_kwargs(model, detach_attention)))
        with torch.no_grad():
            emb = model.embed(batch.input_ids).detach()
        base = _baseline_embeddings(model, batch, emb, baseline, pad_token_id, mask_token_id).detach()
        plan = plan_passes(internal_batch_size, model, emb, n_steps, memory_budget_bytes)
        ig = IntegratedGradients(forward)
        with torch.enable_grad():
            attr, delta = ig.attribute(
                emb,
                baselines=base,
                target=target,
                additional_forward_args=(batch.input_ids, batch.attention_mask, batch.token_type_ids),
                n_steps=n_steps,
                method=method,
                internal_batch_size=plan.internal_batch_size,
                return_convergence_delta=True,
            )
    delta = delta.detach().reshape(-1)
    if method == "riemann_trapezoid":
        # captum's trapezoid weights (1/n, halved at both ends) sum to (n-1)/n;
        # rescaling by n/(n-1) gives the textbook trapezoid rule on linspace(0, 1, n)
        fix = n_steps / (n_steps - 1)
        delta = delta + (fix - 1.0) * attr.detach().reshape(attr.shape[0], -1).sum(dim=1)
        attr = attr * fix
    scores = _finish(reduce_embedding_dim(attr, reduction), batch)
    forward.record(stats, plan)
    if return_delta:
        return scores, delta.float()
    return scores


def attention_weights(model: nn.Module, batch: Batch, *, target: Target = None, **_ignored) -> Tensor:
    """The model's attention distribution as a feature map (Jain & Wallace 2019; Wiegreffe & Pinter 2019).

    Args:
        model: a model whose output carries ``attention`` ``(B, T)``
            (:class:`~xaicore.models.AttentionLSTMClassifier`).
        batch: inputs.
        target: ignored (attention does not depend on the class); accepted
            for the common signature.

    Returns:
        ``(B, T)`` non-negative weights (sum 1 over real tokens for the LSTM),
        0 on padding/special tokens.

    Raises:
        ValueError: the model has no single attention distribution (e.g.
            :class:`~xaicore.models.TransformerClassifier`).
    """
    with torch.no_grad(), eval_mode(model):
        out = forward_batch(model, batch)
    if out.attention is None:
        raise ValueError(
            f"{type(model).__name__} has no single attention distribution; "
            "attention feature maps need AttentionLSTMClassifier"
        )
    return _finish(out.attention, batch)


def leave_one_out(
    model: nn.Module,
    batch: Batch,
    *,
    target: Target = None,
    cancel_out: Union[None, str, CancelOut] = None,
    intervention: Optional[str] = None,
    output: str = "prob",
    pad_token_id: Optional[int] = None,
    replace_id: Optional[int] = None,
    chunk_size: int = 256,
) -> Tensor:
    """Leave-one-out occlusion (Li, Monroe & Jurafsky 2016): ``out(x)[y] - out(x without token t)[y]``.

    Every content token is cancelled out in turn with ``cancel_out``
    (:mod:`xaicore.cancel_out.methods`; default ``"pad"``: its id is replaced by PAD,
    the sequence length and attention mask are unchanged), and the drop of the
    target probability is its score (positive = the token supports the target).
    For the marginalize methods "out" is the marginalised distribution.

    Args:
        model, batch, target: see :func:`saliency`.
        cancel_out: a name in :data:`xaicore.cancel_out.methods.CANCEL_OUT_METHODS` or a
            :class:`~xaicore.cancel_out.methods.CancelOut` (the marginalize methods need one carrying the MLM).
        intervention: older name for ``cancel_out`` (``"pad"``, ``"mask"`` = attention mask, ``"delete"``).
        output: ``"prob"`` (default), ``"logit"`` or ``"log_prob"`` (the
            marginalize methods define no logit: ``"prob"`` or ``"log_prob"``).
        pad_token_id: PAD id (default: from the model).
        replace_id: with ``"pad"``, the id written instead (e.g. UNK); default the PAD id.
        chunk_size: occluded copies per forward pass (>= 1).

    Returns:
        ``(B, T)`` float scores, 0 on padding/special tokens.
    """
    _check_choice("output", output, OUTPUTS)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if cancel_out is not None and intervention is not None:
        raise ValueError("pass cancel_out or the older intervention, not both")
    method = cancel_out if isinstance(cancel_out, CancelOut) else CancelOut(
        cancel_out or intervention or "pad", pad_token_id=pad_token_id, replace_id=replace_id)
    method.check(model)
    target = resolve_target(model, batch, target)
    content = batch.content_mask
    scores = torch.zeros(content.shape, dtype=torch.float, device=content.device)
    pos = content.nonzero()  # (N, 2): example, position
    single = not method.method.needs_mlm
    if not single and output == "logit":
        raise ValueError(f"{method.name} marginalises probabilities: use output='prob' or 'log_prob'")
    with torch.no_grad(), eval_mode(model):
        full = _transform(forward_batch(model, batch).logits.float(), output)
        ref = full.gather(1, target.unsqueeze(1)).squeeze(1)  # (B,)
        for start in range(0, pos.shape[0], chunk_size):
            chunk = pos[start : start + chunk_size]
            rows, cols = chunk[:, 0], chunk[:, 1]
            sub = index_batch(batch, rows)
            remove = torch.zeros_like(sub.attention_mask, dtype=torch.bool)
            remove[torch.arange(rows.numel(), device=rows.device), cols] = True
            if single:
                c = method.apply(model, sub, remove)
                out = _transform(forward_batch(model, c.batch, **c.forward_kwargs()).logits.float(), output)
            else:
                logp = cancel_out_log_probs(model, sub, remove, method)
                out = logp.exp() if output == "prob" else logp
            scores[rows, cols] = ref[rows] - out.gather(1, target[rows].unsqueeze(1)).squeeze(1)
    return _finish(scores, batch)


@dataclass(frozen=True)
class Attributor:
    """A registered attribution method: the function and its declared capabilities.

    Attributes:
        name: the registry / config name.
        fn: ``fn(model, batch, *, target=None, **opts) -> (B, T)``; calling the attributor calls it.
        needs_embeddings_gradient: differentiates through ``model.embed`` / ``inputs_embeds``.
        needs_attention: reads the model's attention distribution (``has_attention`` models only).
        signed: scores may be negative (evidence against the target).
        takes_cancel_out: removes tokens itself (a ``cancel_out=`` option; its faithfulness name carries it).
        path_integral: integrates gradients along a path (``n_steps``, ``method``, ``baseline``,
            ``internal_batch_size``, ``memory_budget_bytes`` and ``stats`` options).
    """

    name: str
    fn: Callable[..., Tensor]
    needs_embeddings_gradient: bool = False
    needs_attention: bool = False
    signed: bool = False
    takes_cancel_out: bool = False
    path_integral: bool = False

    def __call__(self, model: nn.Module, batch: Batch, *, target: Target = None, **opts) -> Tensor:
        return self.fn(model, batch, target=target, **opts)


#: every registered attribution method by name (:func:`register_attributor`); values are callable
ATTRIBUTION_METHODS: dict[str, Attributor] = {}


def register_attributor(attributor: Attributor) -> Attributor:
    """Add ``attributor`` to :data:`ATTRIBUTION_METHODS`; a name may be registered once."""
    if not attributor.name or attributor.name in ATTRIBUTION_METHODS:
        raise ValueError(f"attribution method {attributor.name!r} is empty or already registered")
    ATTRIBUTION_METHODS[attributor.name] = attributor
    return attributor


for _attributor in (
    Attributor("saliency", saliency, needs_embeddings_gradient=True),
    Attributor("saliency_signed", saliency_signed, needs_embeddings_gradient=True, signed=True),
    Attributor("input_x_gradient", input_x_gradient, needs_embeddings_gradient=True, signed=True),
    Attributor("integrated_gradients", integrated_gradients, needs_embeddings_gradient=True, signed=True,
               path_integral=True),
    Attributor("attention", attention_weights, needs_attention=True),
    Attributor("leave_one_out", leave_one_out, signed=True, takes_cancel_out=True),
):
    register_attributor(_attributor)


def attribute(method: str, model: nn.Module, batch: Batch, *, target: Target = None, **opts) -> Tensor:
    """Dispatch to :data:`ATTRIBUTION_METHODS` by name; ``(B, T)`` scores."""
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {', '.join(ATTRIBUTION_METHODS)}")
    return ATTRIBUTION_METHODS[method](model, batch, target=target, **opts)
