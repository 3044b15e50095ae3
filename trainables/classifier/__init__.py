"""The ``classifier`` trainable (attention VAT): the BiLSTM + additive-attention classifier trained with any
regulariser of the AT/VAT family.

``config.py`` (keys, checks, preflight), ``setup.py`` (data, vocabulary, model, trainer), ``trial.py``
(``TRAINABLE``, the body), ``artifacts.py`` (curves, heatmaps, weights), ``metrics.py`` (what it reports,
torch-free).
"""
