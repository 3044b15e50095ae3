"""xaicore: pure algorithms for adversarial training and explainability of text classifiers.

Functions here take tensors, ``nn.Module``s or callables and explicit keyword
arguments; they never read a config dict and never import ray, mlflow or
optuna (``tests/test_imports.py`` enforces it). Submodules are imported on
demand: ``from xaicore.training import fit``.
"""

__version__ = "0.1.0"
