"""Output for people and other tools: text tables, figures, HTML/Markdown reports and exports
(shapiq, pandas), all rendered from a result's :class:`~kvq.game.summary.Summary`."""
