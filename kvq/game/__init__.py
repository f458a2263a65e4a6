"""The game: value tables and what they are worth, in plain numpy.

Value tables of every coalition or of sampled ones (:mod:`~kvq.game.table`), rule importance,
full importance, interactions and dependence (:mod:`~kvq.game.importance`), estimates from
sampled coalitions (:mod:`~kvq.game.sampling`), trend tests, the verdicts
(:mod:`~kvq.game.verdicts`) and the summary of one table, computed once
(:mod:`~kvq.game.summary`).  Nothing here trains.
"""
