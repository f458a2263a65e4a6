"""The batched engine: rule masks x seeds trained in compiled programs, with checkpoints.

:mod:`~kvq.engine.batched` prepares a problem (network, points, observations, programs), runs
the warm start and trains any list of masks as batches; :mod:`~kvq.engine.checkpoint` saves and
resumes their state; :mod:`~kvq.engine.identity` says what identifies a run.
"""
