"""What a user runs: the one pipeline (:mod:`~kvq.workflows.pipeline`: ``kvq.scan``,
``kvq.estimate``), sweeps over data, noise and splits, rule-weight tuning and ``kvq bench``."""
