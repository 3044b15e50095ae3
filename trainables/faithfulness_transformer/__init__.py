"""The ``faithfulness_transformer`` trainable: the faithfulness evaluation of a Hugging Face transformer
classifier (a ``finetune`` trial's saved ``model/`` directory, or one fine-tuned in the trial), under every
cancel-out method a sub-word vocabulary admits (``mask_token``; the marginalize methods with a masked LM).

``config.py`` (keys, checks, preflight), ``setup.py`` (the saved model read, the cancel-out bound),
``trial.py`` (``TRAINABLE``, the body), ``metrics.py`` (what it reports, torch-free). The metrics and
artifacts are those of :mod:`trainables.faithfulness` (:func:`trainables.faithfulness.evaluate.evaluate_faithfulness`).
"""
