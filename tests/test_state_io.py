"""Model and trial-state files load without unpickling code: a crafted file is refused before it can
run anything, and every file xaisweep itself writes (trial checkpoints, ``best_model.pt``) loads with
``weights_only=True``."""
from __future__ import annotations

import builtins
import pickle

import pytest
import torch

from xaicore.state_io import UnsafeStateFile, load_state_file


class _RunsCodeOnLoad:
    """Unpickling this calls ``exec`` (what a crafted artifact would do with ``os.system``)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('ran')",))


def crafted(tmp_path):
    """A torch file whose ``state_dict`` would run code when loaded with the full unpickler."""
    marker = tmp_path / "code-ran"
    path = tmp_path / "best_model.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "vocab": {}, "payload": _RunsCodeOnLoad(marker)}, path)
    return path, marker


def test_the_crafted_file_really_runs_code_under_the_full_unpickler(tmp_path):
    path, marker = crafted(tmp_path)
    torch.load(path, weights_only=False)
    assert marker.read_text() == "ran"  # so the refusal below is what keeps it from running


def test_crafted_file_is_refused_before_it_runs(tmp_path):
    path, marker = crafted(tmp_path)
    with pytest.raises(UnsafeStateFile, match=r"model_checkpoint .*best_model.pt: refused: it holds objects other "
                                              r"than tensors and plain Python types"):
        load_state_file(path, what="model_checkpoint")
    assert not marker.exists()


def test_not_a_torch_file_is_a_clear_error(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(UnsafeStateFile, match="model.pt"):
        load_state_file(path, what="model_checkpoint")
    with pytest.raises(FileNotFoundError):
        load_state_file(tmp_path / "missing.pt", what="model_checkpoint")


def test_plain_pickle_of_a_class_is_refused(tmp_path):
    path = tmp_path / "state.pt"
    with open(path, "wb") as f:
        pickle.dump({"x": _RunsCodeOnLoad(tmp_path / "m")}, f)
    with pytest.raises(UnsafeStateFile):
        load_state_file(path, what="trial checkpoint")
    assert not (tmp_path / "m").exists()


def test_faithfulness_refuses_a_crafted_model_checkpoint_in_preflight_and_in_the_trial(tmp_path):
    from trainables.faithfulness.config import parse_config, preflight
    from trainables.faithfulness.trial import run_trial

    path, marker = crafted(tmp_path)
    cfg = parse_config({"synthetic_size": 120, "epochs": 1, "model_checkpoint": str(path), "methods": ["attention"],
                        "faith_metrics": ["deletion"]})
    problems = preflight(cfg)
    assert any("refused" in p and "best_model.pt" in p for p in problems), problems
    with pytest.raises(ValueError, match="refused"):
        run_trial(cfg, lambda m, c: None)
    assert not marker.exists()


def test_trial_checkpoints_hold_tensors_and_plain_types_only(tmp_path):
    """A classifier checkpoint (weights, optimiser, schedule, RNGs, history) written as Ray writes it loads
    with weights_only=True, and resuming from the loaded copy is exact."""
    from trainables.classifier.trial import run_trial

    tiny = dict(synthetic_size=160, epochs=2, embedding_dim=8, hidden_dim=8, attention_dim=8)
    reports = []
    full = run_trial(tiny, lambda m, c: reports.append(c))
    torch.save(reports[0], tmp_path / "trial_state.pt")
    state = load_state_file(tmp_path / "trial_state.pt", what="trial checkpoint")
    resumed = run_trial(tiny, lambda m, c: None, resume=state)
    assert resumed.metrics["test/roc_auc"] == full.metrics["test/roc_auc"]
    assert resumed.metrics["train/loss"] == full.metrics["train/loss"]
