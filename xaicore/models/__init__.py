"""Text classifiers with a common interface (see :class:`xaicore.types.ClassifierOutput`)."""
from xaicore.models.lstm_attention import AttentionLSTMClassifier, AttentionLSTMConfig
from xaicore.models.protocol import CAPABILITIES, TextClassifier, capability, forward_batch
from xaicore.models.transformer import TransformerClassifier, TransformerClassifierConfig

__all__ = [
    "AttentionLSTMClassifier",
    "AttentionLSTMConfig",
    "CAPABILITIES",
    "TextClassifier",
    "capability",
    "forward_batch",
    "TransformerClassifier",
    "TransformerClassifierConfig",
]
