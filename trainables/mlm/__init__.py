"""The ``mlm`` trainable (cancel-out): build an offline masked LM by MLM-head + encoder fine-tuning on text.

``config.py`` (keys, checks, preflight), ``setup.py`` (sentences and batches), ``trial.py`` (``TRAINABLE``,
the body), ``metrics.py`` (what it reports, torch-free).
"""
