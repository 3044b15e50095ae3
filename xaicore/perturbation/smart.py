"""SMART's smoothness-inducing adversarial regulariser as released in namisan/mt-dnn.

Jiang et al. (2020), "SMART: Robust and Efficient Fine-Tuning for Pre-trained
Natural Language Models through Principled Regularized Optimization"; the
behaviour implemented is that of ``mt_dnn/perturbation.py`` (``SmartPerturbation``),
which similar-word-noise.txt (sec. 2, eq. 2) uses as its baseline with the defaults::

    loss = CE(f(x), y) + alpha * symKL(f(x), f(x~)),   alpha = 1.0 (``lam``)

One step, per batch:

1. ``e``: the tensor to perturb (``target``, below), ``(B, T, H)``.
2. ``delta0 ~ N(0, 1) * noise_var`` (sigma 1e-5), zero on masked-out positions.
3. ``g = d KL(p(x) || p(e + delta0)) / d delta0`` (clean distribution detached,
   batch mean), by :func:`torch.autograd.grad`.
4. per-token L-inf normalisation: ``d = g / (max_e |g| + epsilon)`` (``norm="inf"``;
   ``"l2"`` and ``"l1"`` (sign) as mt-dnn's options), so every token's perturbation
   has L-inf norm ``step_size * m / (m + epsilon)`` with ``m = max |g|``, i.e.
   ``step_size`` (1e-3) unless the gradient is of order ``epsilon`` (1e-6).
5. ``x~ = (e + step_size * d).detach()`` and the loss is
   ``symKL = KL(p(x~).detach() || p(x)) + KL(p(x).detach() || p(x~))``
   (mt-dnn ``SymKlCriterion``: gradients reach both passes).

Where the released code differs from the paper's prose (all code behaviour is the default):

* **Target tensor** (``target="embedding_output"``): mt-dnn perturbs the output of
  the encoder's embedding module, ``LayerNorm(W_word[x] + W_pos + W_type)``, and
  feeds ``e + delta`` back as ``inputs_embeds``, so the model adds position and
  token-type embeddings and LayerNorm a *second* time on the perturbed pass
  (which therefore differs from the clean pass even at ``delta = 0``).
  ``target="word"`` perturbs the word-embedding lookup instead (the prose's
  "embedding x", and where the similar-word noise acts).
* **Initial noise dropped**: the prose adds the ascent step to the random
  initialisation; the code's final input is ``e + step * d`` without ``delta0``
  (``keep_init_noise=True`` gives the prose).
* **No projection** onto an ``eps`` ball (the prose's ``||delta||_inf <= eps``): none is made.
* **Detached adversarial input**: ``x~`` is detached, so the adversarial term trains
  the layers above the perturbed tensor only (not the embeddings below it).
* **Special tokens**: the code masks the noise with the attention mask only, so
  ``[CLS]``/``[SEP]`` are perturbed (``mask="attention"``); ``mask="content"``
  spares them as the similar-word noise does.
* **Non-finite gradient**: the code returns a loss of 0 for the batch; so do we.
* Dropout: every pass draws fresh dropout masks, as in mt-dnn.

Per-step statistics: ``noise_ratio`` = mean over examples of ``||x~ - e||_2 / ||e||_2``
over the masked positions (paper: about 0.003%), ``frac_changed`` = perturbed content tokens /
content tokens (special tokens are not counted, also when ``mask='attention'`` perturbs them).

Host syncs: none in :meth:`SmartRegularizer.loss_with_device_stats` (what the training loop calls):
the non-finite-gradient case is a device-side ``where``, not a mid-step read.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from xaicore.models.protocol import capability
from xaicore.perturbation.noise import DeviceStatsLoss, symmetric_kl
from xaicore.perturbation.norms import kl_from_logits
from xaicore.precision import exact, to_exact
from xaicore.types import Batch, ClassifierOutput

SMART_TARGETS = ("embedding_output", "word")


@dataclass(frozen=True)
class SmartRegularizer(DeviceStatsLoss):
    """See module docstring.

    Attributes:
        noise_var: sigma of the random initial noise (mt-dnn ``noise_var`` 1e-5).
        step_size: ascent step (mt-dnn ``step_size`` 1e-3); the per-token L-inf size.
        epsilon: added to the gradient's norm before dividing (mt-dnn 1e-6).
        norm: ``"inf"`` (default), ``"l2"`` or ``"l1"`` (sign), per token.
        target: ``"embedding_output"`` (mt-dnn code) or ``"word"`` (prose).
        mask: ``"attention"`` (code: specials perturbed) or ``"content"``.
        keep_init_noise: add the step to the initial noise (prose) instead of dropping it (code).
    """

    noise_var: float = 1e-5
    step_size: float = 1e-3
    epsilon: float = 1e-6
    norm: str = "inf"
    target: str = "embedding_output"
    mask: str = "attention"
    keep_init_noise: bool = False
    name: str = "smart"
    uses_unlabeled: bool = False

    def __post_init__(self) -> None:
        problems = []
        if not self.noise_var >= 0:
            problems.append(f"noise_var must be >= 0, got {self.noise_var}")
        if not self.step_size >= 0:
            problems.append(f"step_size must be >= 0, got {self.step_size}")
        if not self.epsilon > 0:
            problems.append(f"epsilon must be > 0, got {self.epsilon}")
        if self.norm not in ("inf", "l2", "l1"):
            problems.append(f"norm must be 'inf', 'l2' or 'l1', got {self.norm!r}")
        if self.target not in SMART_TARGETS:
            problems.append(f"target must be one of {SMART_TARGETS}, got {self.target!r}")
        if self.mask not in ("attention", "content"):
            problems.append(f"mask must be 'attention' or 'content', got {self.mask!r}")
        if problems:
            raise ValueError("; ".join(problems))

    def _base(self, model: nn.Module, batch: Batch, clean: ClassifierOutput) -> Tensor:
        if self.target == "word":
            if clean.embeddings is None:
                raise ValueError("smart (target=word) needs the model to return its word embeddings")
            return clean.embeddings
        if not capability(model, "has_embedding_output"):
            raise ValueError("smart (target=embedding_output) needs a TransformerClassifier-like model")
        return model.embedding_output(batch.input_ids, batch.token_type_ids)

    def _mask(self, batch: Batch) -> Tensor:
        return (batch.attention_mask.bool() if self.mask == "attention" else batch.content_mask).unsqueeze(-1)

    def _logits(self, model: nn.Module, batch: Batch, inputs_embeds: Tensor) -> Tensor:
        kwargs = {} if batch.token_type_ids is None else {"token_type_ids": batch.token_type_ids}
        return model(batch.input_ids, batch.attention_mask, inputs_embeds=inputs_embeds, **kwargs).logits

    def normalise(self, grad: Tensor) -> Tensor:
        """mt-dnn's per-token direction of ``grad`` ``(B, T, H)``."""
        if self.norm == "l2":
            return grad / (grad.norm(dim=-1, keepdim=True) + self.epsilon)
        if self.norm == "l1":
            return grad.sign()
        return grad / (grad.abs().amax(dim=-1, keepdim=True) + self.epsilon)

    def adversarial(self, model: nn.Module, batch: Batch, clean: ClassifierOutput) -> tuple[Tensor, Tensor, Tensor]:
        """``(x~ detached, e, finite)`` without reading anything back to the host: ``finite`` is a 0-d
        bool tensor, False when the ascent gradient was not finite (then ``x~`` is ``e``).

        Noise, normalisation and step are computed in fp32 (autocast off, ``e`` cast up): only the two
        forward passes run under the caller's autocast (:mod:`xaicore.precision`).
        """
        base = to_exact(self._base(model, batch, clean))  # (B, T, H)
        with exact(base):
            mask = self._mask(batch).to(base.dtype)  # (B, T, 1)
            delta0 = (torch.randn_like(base) * self.noise_var * mask).requires_grad_(True)
            start_adv = base + delta0
        adv = self._logits(model, batch, start_adv)
        kl = kl_from_logits(clean.logits, adv).mean()  # batchmean, clean detached, fp32
        (grad,) = torch.autograd.grad(kl, delta0, retain_graph=True)
        with exact(base):
            grad = to_exact(grad)
            finite = torch.isfinite(grad).all()
            step = self.normalise(torch.where(finite, grad, torch.zeros_like(grad))) * self.step_size * mask
            start = base + delta0.detach() if self.keep_init_noise else base
            out = torch.where(finite, start + step, base).detach()
        return out, base, finite

    def adversarial_input(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput
    ) -> tuple[Optional[Tensor], Tensor]:
        """``(x~ detached or None when the gradient is not finite, e)``: the perturbed tensor and its base
        (reads the finite flag back: one host sync; the training loop uses :meth:`adversarial`)."""
        adv, base, finite = self.adversarial(model, batch, clean)
        return (adv if bool(finite) else None), base

    def perturbation(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> Tensor:
        """``x~ - e`` ``(B, T, H)``, detached (zeros when the gradient was not finite)."""
        adv, base, _ = self.adversarial(model, batch, clean)
        with exact(base):
            return (adv - base).detach()

    def loss_with_device_stats(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-example ``symKL`` ``(B,)`` and ``{"noise_ratio", "frac_changed"}`` as 0-d device tensors
        (no host sync: a non-finite ascent gradient gives a loss and statistics of exactly 0)."""
        adv, base, finite = self.adversarial(model, batch, clean)
        logits = self._logits(model, batch, adv)
        with torch.no_grad(), exact(base):
            mask = self._mask(batch).to(base.dtype)
            delta = (adv - base) * mask
            ratio = delta.flatten(1).norm(dim=1) / (base * mask).flatten(1).norm(dim=1).clamp_min(1e-12)
            changed = ((delta.abs().amax(-1) > 0) & batch.content_mask).sum()  # content tokens only
            content = batch.content_mask.sum().clamp_min(1)
            zero = torch.zeros((), dtype=ratio.dtype, device=ratio.device)
            stats = {"noise_ratio": torch.where(finite, ratio.mean(), zero),
                     "frac_changed": torch.where(finite, changed.double() / content.double(), zero.double())}
        per = symmetric_kl(clean.logits, logits)
        return torch.where(finite, per, torch.zeros_like(per)), stats

