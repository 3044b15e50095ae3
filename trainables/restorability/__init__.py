"""The ``restorability`` trainable (cancel-out, section 3): can a masked LM restore a cancelled token?

``config.py`` (keys, checks, preflight, the masked LM's check), ``setup.py`` (sampled pairs and their
batches), ``trial.py`` (``TRAINABLE``, the body), ``artifacts.py`` (Figs. 3/4, tables, values),
``metrics.py`` (what it reports, torch-free).
"""
