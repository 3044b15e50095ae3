"""The ``faithfulness`` trainable (faithfulness evaluation): train (or load) the attention LSTM of the
``classifier`` trainable, then evaluate every attribution method with every faithfulness metric.

``config.py`` (keys, checks, preflight), ``checkpoint.py`` (a saved model instead of training),
``evaluate.py`` (methods x metrics), ``trial.py`` (``TRAINABLE``, the body), ``artifacts.py`` (tables,
heatmaps, curves), ``metrics.py`` (what it reports, torch-free).
"""
