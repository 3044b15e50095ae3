"""Text classifiers with a common interface (:class:`xaicore.types.ClassifierOutput`, the
:class:`~xaicore.models.protocol.TextClassifier` protocol), the masked LM and model helpers.

Import from the submodules (``from xaicore.models.lstm_attention import AttentionLSTMClassifier``).
"""
