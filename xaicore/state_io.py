"""Read model and trial-state files without unpickling code.

``torch.load(..., weights_only=False)`` runs arbitrary pickle code while it reads a file: a
crafted ``best_model.pt`` or checkpoint (say an artifact downloaded from a shared tracking
server) would execute on load. Every file this project reads back holds tensors and plain
Python types only (dicts, lists, tuples, str, int, float, bool, None), so it is loaded with
``weights_only=True``, PyTorch's restricted unpickler, and anything else is refused.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

__all__ = ["UnsafeStateFile", "load_state_file"]


class UnsafeStateFile(ValueError):
    """A state file that holds more than tensors and plain types, or that is not a torch file at all."""


def load_state_file(path: str | Path, *, what: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one clear error for a file it refuses.

    Args:
        path: the file.
        what: what the file is meant to be, for the message (``"model_checkpoint"``).
        map_location: as for :func:`torch.load`.

    Raises:
        FileNotFoundError: no such file.
        UnsafeStateFile: the file needs the full unpickler (it holds objects that could run code
            when loaded, or was written by an older version that pickled classes) or is not a
            torch file.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()
        reason = next((line for line in first if "GLOBAL" in line or "Unsupported" in line), first[0] if first else "")
        raise UnsafeStateFile(
            f"{what} {path}: refused: it holds objects other than tensors and plain Python types, which "
            f"could run code when loaded ({reason.strip()}). Files written by xaisweep hold tensors and plain "
            f"types only; re-create this one with the current version (train the trial again), and never "
            f"load a file of unknown origin with weights_only=False") from None
    except Exception as err:  # noqa: BLE001 - the restricted unpickler fails on garbage with assorted errors
        raise UnsafeStateFile(f"{what} {path}: not a readable PyTorch file ({err})") from None
