"""The ``finetune`` trainable (similar-word noise): transformer fine-tuning with SMART or similar-word noise.

``config.py`` (keys, checks, split names, preflight), ``setup.py`` (data, tokenizer, model, regulariser,
trainer), ``trial.py`` (``TRAINABLE``, the body), ``artifacts.py`` (curves, noise statistics, tables,
Figure 2, weights), ``metrics.py`` (what it reports, torch-free).
"""
