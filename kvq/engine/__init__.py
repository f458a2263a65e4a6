"""The batched engine: rule masks x seeds trained in compiled programs, with checkpoints.

:mod:`~kvq.engine.plan` decides what to compile and how much fits (and checks the inputs first);
:mod:`~kvq.engine.batched` prepares a problem (network, points, observations, programs), runs the
warm start and trains any list of masks as batches; :mod:`~kvq.engine.runner` is the host loop
of one batch and the clock; :mod:`~kvq.engine.checkpoint` saves and resumes their state;
:mod:`~kvq.engine.identity` says what identifies a run.
"""

from kvq.engine.batched import Engine, Progress, Trained

__all__ = ["Engine", "Progress", "Trained"]
