"""Text classifiers with a common interface (see :class:`xaicore.types.ClassifierOutput`)."""
from xaicore.models.lstm_attention import AttentionLSTMClassifier, AttentionLSTMConfig
from xaicore.models.transformer import TransformerClassifier, TransformerClassifierConfig

__all__ = [
    "AttentionLSTMClassifier",
    "AttentionLSTMConfig",
    "TransformerClassifier",
    "TransformerClassifierConfig",
]
