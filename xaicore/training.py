"""The one training loop every method uses.

Methods differ only in the regulariser plugged into :func:`compute_loss`
(:mod:`xaicore.perturbation.regularizers`); the loop itself (AdamW, linear warm-up then
linear decay, gradient clipping, per-epoch evaluation, best-epoch selection,
checkpointable state) is shared.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaicore.compilation import EAGER, Compilation
from xaicore.models.protocol import forward_batch
from xaicore.perturbation.regularizers import Regularizer
from xaicore.precision import FP32, Precision, to_host
from xaicore.seeding import rng_state, set_rng_state
from xaicore.types import Batch

BatchPairs = Iterable[tuple[Batch, Optional[Batch]]]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        epochs: number of passes over the labeled data.
        lr: peak learning rate.
        weight_decay: weight decay: decoupled (AdamW) for ``optimizer="adamw"``, an L2 term
            added to the gradient (``torch.optim.Adam``) for ``optimizer="adam"``.
        optimizer: ``"adamw"`` or ``"adam"`` (the reference code of Kitada & Iyatomi / Jain &
            Wallace uses Adam with ``amsgrad=True`` and L2 weight decay 1e-5).
        amsgrad: use the AMSGrad variant (Reddi et al. 2018).
        warmup_ratio: fraction of all steps spent warming the lr up linearly
            from 0; it then decays linearly to 0 (``0`` = constant lr after warm-up
            is disabled: with ``decay=False`` the lr stays at its peak).
        decay: decay the lr linearly to 0 over training after warm-up.
        max_grad_norm: clip the global gradient L2 norm (``None``: no clipping).
        lam: weight ``lambda`` of the regulariser (attention-vat.txt eq. 10).
        selection_metric: validation metric that picks the best epoch.
        selection_mode: ``"max"`` or ``"min"`` for ``selection_metric``.
    """

    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    amsgrad: bool = False
    warmup_ratio: float = 0.0
    decay: bool = False
    max_grad_norm: Optional[float] = 5.0
    lam: float = 1.0
    selection_metric: str = "f1"
    selection_mode: str = "max"

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1, got {self.epochs}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            problems.append(f"max_grad_norm must be > 0 or None, got {self.max_grad_norm}")
        if not self.lam >= 0:
            problems.append(f"lam (lambda) must be >= 0, got {self.lam}")
        if self.optimizer not in ("adamw", "adam"):
            problems.append(f"optimizer must be 'adamw' or 'adam', got {self.optimizer!r}")
        if self.selection_mode not in ("max", "min"):
            problems.append(f"selection_mode must be 'max' or 'min', got {self.selection_mode!r}")
        if problems:
            raise ValueError("; ".join(problems))


def compute_loss(
    model: nn.Module,
    batch: Batch,
    *,
    unlabeled: Optional[Batch] = None,
    regularizer: Optional[Regularizer] = None,
    lam: float = 1.0,
) -> tuple[Tensor, dict[str, float]]:
    """Training loss ``CE(labeled) + lam * mean(regulariser over labeled [+ unlabeled])``.

    With ``regularizer=None`` or ``lam == 0`` the loss *is* the vanilla
    cross-entropy (no perturbation is computed). Unlabeled examples enter only
    regularisers with ``uses_unlabeled`` (VAT); the regularisation term is the
    mean over all ``N_l + N_ul`` examples (attention-vat.txt eq. 1).

    Optional regulariser hooks: ``loss_with_device_stats`` (per-example loss plus per-step
    statistics as 0-d device tensors; else ``loss_with_stats`` with floats), added to ``parts``,
    and ``fused_loss(model, batch)`` (the clean and the perturbed pass in one batched forward;
    ``None`` when it cannot).

    Returns:
        ``(loss, parts)`` where ``parts`` has float ``ce``, ``reg`` and any regulariser statistics
        (read back with one host sync; the training loop uses :func:`compute_loss_on_device`).
    """
    loss, parts = compute_loss_on_device(model, batch, unlabeled=unlabeled, regularizer=regularizer, lam=lam)
    return loss, to_host(parts)


def compute_loss_on_device(
    model: nn.Module,
    batch: Batch,
    *,
    unlabeled: Optional[Batch] = None,
    regularizer: Optional[Regularizer] = None,
    lam: float = 1.0,
) -> tuple[Tensor, dict[str, Any]]:
    """:func:`compute_loss` without any host read: ``parts`` are detached 0-d device tensors (or
    constant floats)."""
    if batch.labels is None:
        raise ValueError("the labeled batch has no labels")
    # a regulariser may run the clean and its perturbed pass as one batched forward (``fused_loss``,
    # the similar-word noise does); it returns None when it cannot (then the two-pass path below)
    fused = getattr(regularizer, "fused_loss", None) if regularizer is not None and lam != 0 and unlabeled is None else None
    joint = fused(model, batch) if fused is not None else None
    if joint is not None:
        clean, per, stats = joint
        ce = F.cross_entropy(clean.logits, batch.labels)
        reg = per.mean()
        return ce + lam * reg, {"ce": ce.detach(), "reg": reg.detach(), **stats}
    clean = forward_batch(model, batch)
    ce = F.cross_entropy(clean.logits, batch.labels)
    if regularizer is None or lam == 0:
        return ce, {"ce": ce.detach(), "reg": 0.0}
    stats: dict[str, Any] = {}

    def regularise(b: Batch, c, labels: Optional[Tensor]) -> Tensor:
        # a regulariser may also report per-step statistics (noise/embedding norm ratio, fraction
        # of tokens changed, ...) through ``loss_with_device_stats`` / ``loss_with_stats``; the loop
        # averages them per epoch
        with_stats = getattr(regularizer, "loss_with_device_stats", None) or getattr(regularizer, "loss_with_stats", None)
        if with_stats is None:
            return regularizer(model, b, c, labels)
        per, st = with_stats(model, b, c, labels)
        stats.update(st)
        return per

    per_example = [regularise(batch, clean, batch.labels)]  # (B,)
    if unlabeled is not None and regularizer.uses_unlabeled:
        ul_clean = forward_batch(model, unlabeled)
        per_example.append(regularise(unlabeled, ul_clean, None))  # (B_ul,)
    reg = torch.cat(per_example).mean()
    return ce + lam * reg, {"ce": ce.detach(), "reg": reg.detach(), **stats}


def check_finite(loss: float, epoch: int) -> None:
    """The NaN/inf guard: raise ``FloatingPointError`` when the (read-back) training loss is not finite."""
    if not math.isfinite(loss):
        raise FloatingPointError(f"non-finite training loss {loss} at epoch {epoch + 1}")


def _lr_lambda(total_steps: int, warmup_steps: int, decay: bool) -> Callable[[int], float]:
    def f(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if not decay:
            return 1.0
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return f


class StepClock:
    """Seconds spent in optimisation steps, summed over an epoch, without a host sync per step.

    On the CPU, and when every step reads its statistics back anyway (``per_step_read``: the read waits for the
    device), ``time.perf_counter`` around each step. On CUDA without per-step reads the host only queues the
    work, so a host clock would time the queueing: each step is bracketed by two ``torch.cuda.Event`` s instead
    (recorded on the current stream, no sync) and their elapsed times are read once, in :meth:`total`, at the
    end of the epoch (the epoch's one read of its statistics waits for the same work).

    Args:
        device: the training device.
        per_step_read: the step reads its values back (``Trainer.train_step``).
    """

    def __init__(self, device: torch.device, per_step_read: bool) -> None:
        self.events = torch.device(device).type == "cuda" and not per_step_read
        self._pending: list[tuple[Any, Any]] = []
        self._seconds = 0.0

    def start(self) -> Any:
        """A mark before the step: a recorded CUDA event, or the host clock."""
        if self.events:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def stop(self, mark: Any) -> Optional[float]:
        """After the step: its seconds (host clock), or ``None`` with events (read in :meth:`total`)."""
        if self.events:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._pending.append((mark, end))
            return None
        dt = time.perf_counter() - mark
        self._seconds += dt
        return dt

    def total(self) -> float:
        """Seconds of every step so far (waits for the last recorded step's end event)."""
        if self._pending:
            self._pending[-1][1].synchronize()
            self._seconds += sum(a.elapsed_time(b) for a, b in self._pending) / 1000.0  # ms -> s
            self._pending = []
        return self._seconds


#: devices whose parameters the fused (one-kernel) Adam / AdamW updates
FUSED_OPTIMIZER_DEVICES = ("cpu", "cuda")


def make_optimizer(params: Iterable[Tensor], config: TrainConfig) -> torch.optim.Optimizer:
    """``config``'s Adam / AdamW over ``params``, fused (``fused=True``: one kernel per step instead of
    a dozen elementwise passes over every parameter) when every parameter is a floating tensor on a
    :data:`FUSED_OPTIMIZER_DEVICES` device; the update equals the unfused one up to float rounding
    (tests/test_models_training.py checks it). Otherwise PyTorch's default implementation."""
    params = list(params)
    fused = bool(params) and all(p.is_floating_point() and p.device.type in FUSED_OPTIMIZER_DEVICES for p in params)
    opt = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return opt(params, lr=config.lr, weight_decay=config.weight_decay, amsgrad=config.amsgrad,
               **({"fused": True} if fused else {}))


@dataclass
class EpochResult:
    """What :func:`fit` reports after each epoch.

    Attributes:
        epoch: 1-based epoch number.
        train: mean ``loss``, ``ce``, ``reg`` and ``step_time`` (seconds per step; on CUDA without per-step
            logging the device time of the steps, :class:`StepClock`), the last ``lr`` and
            ``pad_efficiency`` (real / padded tokens over the epoch's batches, labeled and unlabeled);
            with a compiled model also ``recompiles``: the graphs compiled during the epoch's steps and
            its evaluation (:class:`xaicore.compilation.CompileCounter`).
        valid: the ``evaluate`` metrics.
        is_best: whether this epoch is the best so far on the selection metric.
        best: the best selection-metric value so far.
    """

    epoch: int
    train: dict[str, float]
    valid: dict[str, float]
    is_best: bool
    best: float


@dataclass
class FitResult:
    history: list[EpochResult] = field(default_factory=list)
    best_epoch: int = 0
    best: float = float("nan")


class Trainer:
    """Holds the model, optimiser and schedule of one run; :meth:`fit` runs the loop.

    Args:
        model: the classifier (moved to ``device``).
        config: :class:`TrainConfig`.
        steps_per_epoch: number of optimisation steps per epoch (for the schedule).
        regularizer: an AT/VAT regulariser or ``None`` (vanilla).
        device: where to train; default: the model's device.
        loss_fn: ``(model, batch) -> (loss, parts)`` replacing :func:`compute_loss`
            for objectives other than classification (e.g.
            :func:`xaicore.models.masked_lm.masked_lm_loss`); ``parts`` (floats or 0-d
            tensors) are averaged per epoch like ``ce``/``reg``.
        precision: :class:`xaicore.precision.Precision` (default fp32: no autocast). The loss and
            the evaluation run under its autocast; fp16 scales the loss (``torch.amp.GradScaler``).
        compilation: :class:`xaicore.compilation.Compilation` (default :data:`~xaicore.compilation.EAGER`:
            none). When enabled, the model (on ``device``) is compiled once, here, in place; training,
            evaluation and anything else calling ``self.model`` use the compiled forward, and
            :attr:`compiled` counts the graphs (``train["recompiles"]`` per epoch).

    Host syncs: a step (:meth:`step_on_device`) reads nothing back to the host for fine-tuning, the
    similar-word noise and SMART (fp32/bf16; an fp16 scaler reads its inf flag). :meth:`fit` keeps
    the per-step statistics on the device and reads them once per epoch, or once per step when an
    ``on_step`` callback logs every step; the NaN/inf guard is checked at that read.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        *,
        steps_per_epoch: int,
        regularizer: Optional[Regularizer] = None,
        device: torch.device | str | None = None,
        loss_fn: Optional[Callable[[nn.Module, Batch], tuple[Tensor, dict[str, Any]]]] = None,
        precision: Precision = FP32,
        compilation: Compilation = EAGER,
    ) -> None:
        self.loss_fn = loss_fn
        self.precision = precision
        self.scaler = precision.scaler()
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device)
        self.compilation = compilation
        self.compiled = compilation.apply(self.model)  # a CompileCounter, or None (eager)
        self.config = config
        self.regularizer = regularizer
        self.steps_per_epoch = max(1, steps_per_epoch)
        total = config.epochs * self.steps_per_epoch
        self.optimizer = make_optimizer(model.parameters(), config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_lambda(total, int(math.ceil(config.warmup_ratio * total)), config.decay)
        )
        self.epoch = 0
        self.result = FitResult()
        self.best_state: Optional[dict[str, Tensor]] = None

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """A snapshot (deep copy) of everything needed to resume exactly: weights, optimiser, schedule, RNGs, history."""
        return copy.deepcopy({
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "result": dataclasses.asdict(self.result),  # plain types: checkpoints load with weights_only=True
            "best_state": self.best_state,
            "rng": rng_state(),
            **({"scaler": self.scaler.state_dict()} if self.scaler is not None else {}),
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        result = state["result"]
        self.result = FitResult(history=[EpochResult(**e) for e in result["history"]],
                                best_epoch=int(result["best_epoch"]), best=float(result["best"]))
        self.best_state = state["best_state"]
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])

    # ------------------------------------------------------------- loop
    def step_on_device(self, batch: Batch, unlabeled: Optional[Batch] = None) -> dict[str, Any]:
        """One optimisation step without a host read: ``{"loss", "ce", "reg", ...}`` as detached 0-d
        device tensors (or constant floats). A non-finite loss is *not* detected here: the caller checks
        ``loss`` when it reads the values (:func:`check_finite`)."""
        self.model.train()
        batch = batch.to(self.device)
        unlabeled = unlabeled.to(self.device) if unlabeled is not None else None
        with self.precision.autocast():
            if self.loss_fn is not None:
                loss, parts = self.loss_fn(self.model, batch)
            else:
                loss, parts = compute_loss_on_device(
                    self.model, batch, unlabeled=unlabeled, regularizer=self.regularizer, lam=self.config.lam
                )
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        return {"loss": loss.detach().float(), **parts}

    def train_step(self, batch: Batch, unlabeled: Optional[Batch] = None) -> dict[str, float]:
        """One optimisation step, its parts read back as floats with one host sync; raises
        ``FloatingPointError`` on a non-finite loss (at that read, after the update)."""
        parts = to_host(self.step_on_device(batch, unlabeled))
        check_finite(parts["loss"], self.epoch)
        return parts

    def fit(
        self,
        batches: Callable[[int], BatchPairs],
        evaluate: Callable[[nn.Module], dict[str, float]],
        *,
        on_epoch_end: Optional[Callable[[EpochResult, "Trainer"], None]] = None,
        on_step: Optional[Callable[[int, dict[str, float]], None]] = None,
    ) -> FitResult:
        """Train from the current epoch to ``config.epochs``.

        Args:
            batches: ``epoch (0-based) -> iterable of (labeled, unlabeled or None)``.
            evaluate: ``model -> metrics`` on validation data (must put the
                model in eval mode itself, e.g. via :func:`xaicore.metrics.predict`).
            on_epoch_end: called after every epoch with the result and the
                trainer (whose :meth:`state_dict` is the checkpoint).
            on_step: called after every optimisation step with the global step
                (1-based, counted over all epochs) and that step's parts
                (``loss``, ``ce``, ``reg``, ``step_time`` and any regulariser
                statistics such as ``noise_ratio``); per-step logging.

        Returns:
            :class:`FitResult`; on return the model holds the best epoch's weights.
        """
        cfg = self.config
        sign = 1.0 if cfg.selection_mode == "max" else -1.0
        while self.epoch < cfg.epochs:
            graphs_before = self.compiled.graphs if self.compiled is not None else 0
            sums: dict[str, Any] = {}
            steps = 0
            clock = StepClock(self.device, per_step_read=on_step is not None)
            real_tokens: Any = 0  # real (attention_mask) tokens of the epoch's batches, labeled and unlabeled
            positions = 0  # padded positions (B * T) of those batches
            for batch, unlabeled in batches(self.epoch):
                for b in (batch, unlabeled):
                    if b is not None:
                        real_tokens = real_tokens + b.attention_mask.sum()
                        positions += b.attention_mask.numel()
                mark = clock.start()
                if on_step is not None:  # per-step logging: one read per step
                    parts: dict[str, Any] = self.train_step(batch, unlabeled)
                else:  # statistics stay on the device until the end of the epoch
                    parts = self.step_on_device(batch, unlabeled)
                dt = clock.stop(mark)  # None on CUDA without per-step reads: read once per epoch
                steps += 1
                if on_step is not None:
                    on_step(self.epoch * self.steps_per_epoch + steps, {**parts, "step_time": dt})
                for k, v in parts.items():
                    # float64 on the device: the same sums as Python floats of the per-step values
                    v = v.detach().to(torch.float64) if isinstance(v, Tensor) else v
                    sums[k] = sums.get(k, 0.0) + v
            if on_step is None:
                sums = to_host(sums)  # the one read of this epoch's statistics
                if "loss" in sums and not math.isfinite(sums["loss"]):
                    check_finite(sums["loss"], self.epoch)
            train = {k: v / max(1, steps) for k, v in sums.items()}
            train["step_time"] = clock.total() / max(1, steps)
            train["lr"] = float(self.scheduler.get_last_lr()[0])
            train["pad_efficiency"] = float(real_tokens) / positions if positions else float("nan")
            with self.precision.autocast():
                valid = evaluate(self.model)
            if self.compiled is not None:
                train["recompiles"] = float(self.compiled.graphs - graphs_before)
            if cfg.selection_metric not in valid:
                raise ValueError(
                    f"selection metric {cfg.selection_metric!r} not among evaluation metrics {sorted(valid)}"
                )
            value = float(valid[cfg.selection_metric])
            best = self.result.best
            is_best = not self.result.history or (value == value and (best != best or sign * value > sign * best))
            self.epoch += 1
            if is_best:
                self.result.best, self.result.best_epoch = value, self.epoch
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            epoch_result = EpochResult(self.epoch, train, dict(valid), is_best, self.result.best)
            self.result.history.append(epoch_result)
            if on_epoch_end is not None:
                on_epoch_end(epoch_result, self)
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.result
