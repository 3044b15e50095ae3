"""Faithfulness (and plausibility) metrics for token feature maps, and the attributions they score.

Import from the submodules (``from xaicore.faithfulness.deletion import deletion_until_flip``):
the package imports nothing itself, so that a module needing one metric (or the attribution
methods, :mod:`xaicore.faithfulness.attribution`) loads only that one.

Implements the three evaluations of faithfulness-evaluation.txt plus ERASER's
soft-score metrics and agreement measures. Every metric takes a classifier,
a :class:`~xaicore.types.Batch` and a feature map ``scores`` ``(B, T)`` (from
:mod:`xaicore.faithfulness.attribution` or any other source; only its values on content
tokens, :attr:`Batch.content_mask`, are read) and runs under
:func:`torch.no_grad` with the model in eval mode (every module's previous
train/eval flag is restored).

Token removal: the erasure metrics (deletion, comprehensiveness, sufficiency)
and :func:`xaicore.faithfulness.attribution.leave_one_out` take ``cancel_out=``, a method of
:mod:`xaicore.cancel_out.methods` (default ``"pad"``: the id is replaced by PAD, the
position stays in the attention mask; also ``delete``, ``zero_vector``,
``mask_token``, ``attention_mask`` - for the BiLSTM excluded from its attention
softmax - and the two marginalize methods, which need a masked LM). The older
``intervention=`` names ``pad`` / ``mask`` (= ``attention_mask``) / ``delete`` and
:func:`remove_tokens` still work. Removal only ever touches content tokens:
special tokens ([CLS], [SEP]) and padding are never removed. Ranking: tokens are
removed in descending order of ``scores``; ties are broken by position (earlier
first).

Evaluations:

* :func:`deletion_until_flip` - faithfulness-evaluation.txt section 4 ("ERASER"
  deletion): fraction of content tokens removed until the predicted label
  changes, 1.0 if it never does (lower = more faithful).
* :class:`WeakLearner` / :func:`train_weak_learner` - section 5 (after
  Wiegreffe & Pinter 2019): a context-free per-token MLP pooled with the
  frozen feature map; test F1 and the validation-loss curve; ``"uniform"``
  and ``"random"`` baselines.
* :func:`shuffle_tvd` - section 6 (after Jain & Wallace 2019): median over
  random permutations of the feature map (used as pooling / attention
  weights) of the total variation distance between output distributions.
* :func:`erasure_curves` / :func:`comprehensiveness` / :func:`sufficiency` -
  DeYoung et al. (2020) ERASER, AOPC over bins 1, 5, 10, 20, 50 %.
* :func:`rank_agreement`, :func:`rationale_agreement`, :func:`precision_at_k`
  - agreement between two maps, and with human / planted rationales.
"""
