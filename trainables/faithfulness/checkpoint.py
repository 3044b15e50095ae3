"""A saved classifier instead of a trained one (``model_checkpoint``): the file read without unpickling
code (:func:`read_checkpoint`, also the preflight check) and loaded into a setup (:func:`load_trained`)."""
from __future__ import annotations

from typing import Any

from trainables.classifier.config import ClassifierTrialConfig
from trainables.classifier.setup import ClassifierSetup
from trainables.classifier.trial import TrainedClassifier
from trainables.protocol import start_runtime
from xaicore.state_io import load_state_file


def read_checkpoint(path: str) -> dict[str, Any]:
    """The ``best_model.pt`` dict (``state_dict``, ``config``, ``vocab``), read without unpickling code.

    Raises:
        ValueError: the file holds more than tensors and plain types, or is no such model.
    """
    state = load_state_file(path, what="model_checkpoint")
    if not isinstance(state, dict) or not {"state_dict", "vocab"} <= set(state):
        raise ValueError(f"model_checkpoint {path}: not a model saved by the classifier trainable "
                         "(`save_model: true` writes model/best_model.pt with state_dict, config and vocab)")
    return state


def load_trained(cfg: ClassifierTrialConfig, path: str):
    """A :class:`TrainedClassifier` whose weights come from ``path`` (no training)."""
    start_runtime(cfg)
    setup = ClassifierSetup(cfg)
    state = read_checkpoint(path)
    if state.get("vocab") != setup.vocab.to_dict():
        raise ValueError(f"model_checkpoint {path}: its vocabulary differs from this config's data; "
                         "use the data settings of the trial that saved it")
    setup.model.load_state_dict(state["state_dict"])
    final = {f"test/{k}": v for k, v in setup.evaluate(setup.model, "test").items()}
    return TrainedClassifier(setup=setup, history=[], final=final, checkpoint=lambda: None)
