"""How many forward/backward passes Integrated Gradients takes (faithfulness-evaluation: the IG maps).

IG evaluates the gradient at ``n_steps`` points of the path for each of the ``B`` examples: ``B * n_steps``
interpolated rows. captum runs them in chunks of whole steps (``internal_batch_size // B`` steps per pass);
``internal_batch_size="auto"`` sizes the chunk from the batch's shape ``(B, T, E)``, an estimate of the
model's activations and a memory budget (:func:`ig_rows_per_pass`), so IG runs in
``ceil(B * n_steps / rows)`` passes; :class:`PassCounter` counts the passes actually made.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Union

from torch import Tensor, nn

#: working memory one IG pass may use with ``internal_batch_size="auto"`` when no budget is given (1 GiB)
DEFAULT_IG_MEMORY_BUDGET_BYTES = 1 << 30
#: activations of parameter-free operations (non-linearities, residual sums, softmax) on top of those counted
ACTIVATION_SAFETY = 2


def activation_elements_per_token(model: nn.Module, seq_len: int) -> int:
    """Estimate of the activation elements one token of one input row keeps for the backward pass.

    Counted from the model's modules (what a forward pass with ``inputs_embeds`` stores): a
    ``Linear`` its ``out_features``; an ``LSTM`` / ``GRU`` / ``RNN`` its gates plus hidden and cell
    states per direction and layer; a ``LayerNorm`` its normalised width; a ``Conv1d`` its output
    channels; attention (``nn.MultiheadAttention`` or a module with an ``int`` ``num_attention_heads``,
    the Hugging Face self-attention) its scores and probabilities, ``2 * heads * seq_len``; any other
    module with parameters of its own the largest first dimension among them (an output width). The
    sum is multiplied by :data:`ACTIVATION_SAFETY` for parameter-free operations. Embedding lookups
    are not counted: IG feeds the word embeddings through ``inputs_embeds``.
    """
    total = 0
    for m in model.modules():
        if isinstance(m, nn.Linear):
            total += m.out_features
        elif isinstance(m, nn.RNNBase):
            gates = {"LSTM": 4, "GRU": 3}.get(m.mode, 1)
            total += (gates + 2) * m.hidden_size * (2 if m.bidirectional else 1) * m.num_layers
        elif isinstance(m, nn.LayerNorm):
            total += math.prod(m.normalized_shape)
        elif isinstance(m, nn.Conv1d):
            total += m.out_channels
        elif isinstance(m, nn.MultiheadAttention):
            total += 3 * m.embed_dim + 2 * m.num_heads * seq_len  # packed in-projection, scores, probabilities
        elif isinstance(getattr(m, "num_attention_heads", None), int):
            total += 2 * m.num_attention_heads * seq_len
        elif not isinstance(m, nn.Embedding):
            total += max((int(p.shape[0]) if p.dim() else 1 for p in m.parameters(recurse=False)), default=0)
    return max(1, ACTIVATION_SAFETY * total)


def ig_rows_per_pass(
    model: nn.Module,
    shape: tuple[int, int, int],
    n_steps: int,
    memory_budget_bytes: int,
    *,
    element_size: int = 4,
) -> int:
    """Interpolation rows per forward/backward pass of IG on a batch of ``shape`` ``(B, T, E)`` within a budget.

    One row of ``T`` tokens costs ``T * element_size * (3 * E + A)`` bytes, ``A`` =
    :func:`activation_elements_per_token` (IG's own copies: the interpolated input, its gradient and
    the step-weighted gradient, ``3 * E``), plus ``17 * T`` bytes of expanded ids, mask and token types.
    The result is a whole number of steps times ``B`` (captum batches by steps), at least ``B`` (one
    step per pass, even over budget) and at most ``B * n_steps`` (one pass): IG then runs in
    ``ceil(B * n_steps / rows)`` passes.
    """
    if memory_budget_bytes <= 0:
        raise ValueError(f"memory_budget_bytes must be > 0, got {memory_budget_bytes}")
    b, t, e = (int(x) for x in shape)
    per_row = t * element_size * (3 * e + activation_elements_per_token(model, t)) + 17 * t
    steps = min(max(1, int(memory_budget_bytes) // max(1, per_row) // max(1, b)), n_steps)
    return steps * b


def check_internal_batch_size(internal_batch_size: Union[None, int, str]) -> None:
    """``ValueError`` unless ``internal_batch_size`` is ``None``, ``"auto"`` or an integer >= 1."""
    if isinstance(internal_batch_size, str) and internal_batch_size != "auto" or \
            isinstance(internal_batch_size, int) and internal_batch_size < 1:
        raise ValueError(f"internal_batch_size must be >= 1, 'auto' or None, got {internal_batch_size!r}")


@dataclass(frozen=True)
class PassPlan:
    """How IG chunks its ``B * n_steps`` rows: captum's ``internal_batch_size`` (``None``: one pass) and the
    resulting whole steps and rows per pass."""

    internal_batch_size: Optional[int]
    steps_per_pass: int
    rows_per_pass: int


def plan_passes(
    internal_batch_size: Union[None, int, str],
    model: nn.Module,
    embeds: Tensor,
    n_steps: int,
    memory_budget_bytes: Optional[int] = None,
) -> PassPlan:
    """The :class:`PassPlan` of ``internal_batch_size`` on the word embeddings ``embeds`` ``(B, T, E)``
    (``"auto"``: :func:`ig_rows_per_pass` for their shape and element size within ``memory_budget_bytes``,
    default :data:`DEFAULT_IG_MEMORY_BUDGET_BYTES`); ``ValueError`` for a bad ``internal_batch_size``."""
    check_internal_batch_size(internal_batch_size)
    b = int(embeds.shape[0])
    if internal_batch_size == "auto":
        budget = DEFAULT_IG_MEMORY_BUDGET_BYTES if memory_budget_bytes is None else memory_budget_bytes
        internal_batch_size = ig_rows_per_pass(model, tuple(embeds.shape), n_steps, budget,
                                               element_size=embeds.element_size())
    # captum: max(1, internal_batch_size // B) whole steps per pass
    steps = n_steps if internal_batch_size is None else min(n_steps, max(1, internal_batch_size // b))
    return PassPlan(internal_batch_size, steps, steps * b)


class PassCounter:
    """A captum forward function that counts its passes over interpolated inputs (``passes``): the calls
    whose first input requires grad, not the convergence check's forward of the input and baseline."""

    def __init__(self, forward: Callable[..., Tensor]) -> None:
        self.forward, self.passes = forward, 0

    def __call__(self, embeds: Tensor, *args: Optional[Tensor]) -> Tensor:
        self.passes += bool(embeds.requires_grad)
        return self.forward(embeds, *args)

    def record(self, stats: Optional[dict], plan: PassPlan) -> None:
        """Put ``passes``, ``rows_per_pass`` and ``steps_per_pass`` into ``stats`` (when it is a dict)."""
        if stats is not None:
            stats.update(passes=self.passes, rows_per_pass=plan.rows_per_pass, steps_per_pass=plan.steps_per_pass)
