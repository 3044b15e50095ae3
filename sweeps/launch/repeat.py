"""``repeats: N`` for a multi-objective sweep: Ray Tune's ``Repeater`` averages one metric, so it cannot
tell the searcher the seeds' mean of each objective. :class:`ObjectivesRepeater` does.

Imported only where the Tuner is built (it imports Ray); the Tuner state pickles it by reference,
so the class keeps this module path.
"""
from __future__ import annotations

import math
from typing import Any, Optional

from ray.tune.search import Repeater


class ObjectivesRepeater(Repeater):
    """``Repeater`` for a searcher whose ``metric`` is a list (Optuna multi-objective).

    Each configuration runs ``repeat`` times; once every run of it has ended, the searcher is told
    the mean over the runs of each objective (NaN-skipping, as Ray's ``Repeater``: a run that did not
    report an objective counts for no objective). A configuration none of whose runs reported an
    objective is told with no result (Optuna marks it pruned: not a point of the Pareto set).
    """

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, **kwargs: Any) -> None:
        metrics = self.searcher.metric
        if not isinstance(metrics, list):
            super().on_trial_complete(trial_id, result, **kwargs)
            return
        group = self._trial_id_to_group.get(trial_id)
        if group is None:
            return  # Ray's Repeater logs this case; nothing to tell the searcher
        scores = [float(result[m]) if result and result.get(m) is not None else math.nan for m in metrics]
        group.report(trial_id, scores)
        if not group.finished_reporting():
            return
        per_run = group.scores()
        means = {}
        for j, m in enumerate(metrics):
            vals = [s[j] for s in per_run if isinstance(s, list) and not math.isnan(s[j])]
            if vals:
                means[m] = sum(vals) / len(vals)
        self.searcher.on_trial_complete(group.primary_trial_id,
                                        result=means if len(means) == len(metrics) else None, **kwargs)


__all__ = ["ObjectivesRepeater"]
