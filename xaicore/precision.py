"""Numeric precision of a run: autocast dtype, gradient scaling, and the exact (fp32) regions.

:class:`Precision` is what the training loop takes (never a config dict): ``dtype=None`` is plain
fp32 (no autocast, the default), ``torch.bfloat16`` / ``torch.float16`` run the forward passes under
:func:`torch.autocast` for ``device_type``; ``float16`` also scales the loss (:meth:`Precision.scaler`).

Perturbation arithmetic stays exact under autocast: the regularisers compute their noise, ascent
step, normalisation and probe directions inside :func:`exact` (autocast off, inputs cast to fp32 by
:func:`to_exact`), add the fp32 perturbation to the fp32 embeddings, and only then run the model
forward under the caller's autocast. A step of 1e-3 on LayerNorm-scale values rounded through bf16
(spacing 2^-7 near 1) would leave most coordinates unchanged.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

__all__ = ["FP32", "PRECISIONS", "Precision", "autocast_active", "exact", "to_exact", "to_host"]

#: the names a config's ``precision`` key takes (``auto``: bf16 where supported on CUDA, else fp32)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """Autocast settings of a run.

    Attributes:
        dtype: the autocast dtype (``torch.bfloat16`` / ``torch.float16``), ``None`` for fp32 (no autocast).
        device_type: ``"cpu"`` or ``"cuda"`` (the autocast device type).
    """

    dtype: Optional[torch.dtype] = None
    device_type: str = "cpu"

    def __post_init__(self) -> None:
        if self.dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError(f"precision dtype must be None, bfloat16 or float16, got {self.dtype}")

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward-pass context: :func:`torch.autocast` for ``dtype``, a no-op for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scaler(self) -> Optional["torch.amp.GradScaler"]:
        """A gradient scaler for fp16 (``None`` otherwise: bf16 and fp32 need none)."""
        if self.dtype is not torch.float16:
            return None
        return torch.amp.GradScaler(self.device_type)

    @classmethod
    def resolve(cls, name: str, device: torch.device | str) -> "Precision":
        """``name`` (:data:`PRECISIONS`) on ``device``: ``auto`` = bf16 on a CUDA device that supports
        it, fp32 elsewhere (CPU included, so CPU results never move)."""
        device = torch.device(device)
        if name not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
        if name == "auto":
            bf16 = device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
            return cls(torch.bfloat16 if bf16 else None, device.type)
        return cls(_DTYPES[name], device.type)


#: plain fp32: no autocast, no scaler
FP32 = Precision()


def exact(like: Tensor) -> contextlib.AbstractContextManager:
    """Autocast off for ``like``'s device type: the perturbation arithmetic inside runs in fp32."""
    return torch.autocast(like.device.type, enabled=False)


def to_exact(x: Tensor) -> Tensor:
    """``x`` as fp32 when it is a lower-precision float (an autocast output); unchanged otherwise."""
    return x.float() if x.is_floating_point() and x.dtype in (torch.bfloat16, torch.float16) else x


def to_host(values: dict) -> dict[str, float]:
    """``{name: 0-d tensor or number}`` -> floats with *one* host read (the tensors stacked as float64)."""
    keys = [k for k, v in values.items() if isinstance(v, Tensor)]
    out = {k: float(v) for k, v in values.items() if not isinstance(v, Tensor)}
    if keys:
        read = torch.stack([values[k].detach().reshape(()).to(torch.float64) for k in keys]).tolist()
        out.update(zip(keys, read))
    return {k: out[k] for k in values}


def autocast_active(like: Tensor) -> bool:
    """Whether autocast is on for ``like``'s device type (a perturbation may then need an fp32 reference)."""
    return torch.is_autocast_enabled(like.device.type)
