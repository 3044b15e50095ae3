"""Seeds for every source of randomness, and RNG state capture for checkpoints."""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy's legacy global RNG and torch (CPU and CUDA).

    Args:
        seed: the seed.
        deterministic: ask torch for deterministic kernels
            (``torch.use_deterministic_algorithms(True, warn_only=True)``, cuDNN
            deterministic, ``CUBLAS_WORKSPACE_CONFIG``; slower on GPU). ``False``
            switches them off again, so one process can run several trials.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # set both ways: a process that runs several trials (Ray actor reuse) must not inherit the
    # mode. Only when it changes: the call imports torch._dynamo (~2 s in a fresh process).
    if (torch.are_deterministic_algorithms_enabled() != deterministic
            or (deterministic and not torch.is_deterministic_algorithms_warn_only_enabled())):
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False


def rng_state() -> dict[str, Any]:
    """Snapshot of every global RNG (for checkpoints), in tensors and plain types only.

    NumPy's ``("MT19937", keys, pos, has_gauss, cached_gaussian)`` keeps its uint32 key array as
    an int64 tensor, so that the snapshot loads with ``torch.load(weights_only=True)``.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a snapshot taken by :func:`rng_state`."""
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state((name, keys.astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
