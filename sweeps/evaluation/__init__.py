"""``xaisweep evaluate``: every saved model of a finished sweep scored by an evaluation trainable
(``plan``: the pre-Ray checks and the jobs; ``run``: the jobs as Ray tasks)."""
