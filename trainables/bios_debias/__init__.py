"""The ``bios_debias`` trainable (cancel-out, section 4): the ``finetune`` trainable on Bias in Bios with the
gender words cancelled out during training.

``config.py`` (keys, checks, preflight), ``setup.py`` (BIOS data, cancel-out objective), ``trial.py``
(``TRAINABLE``, the body, the TPR-gap report), ``artifacts.py`` (Fig. 7, the gap table), ``metrics.py``
(what it reports, torch-free).
"""
