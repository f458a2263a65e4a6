"""Results on disk: save, load, folder kinds, and finding a finished run again.

:mod:`~kvq.store.results` writes ``results.json``, ``table.npz`` and ``table.csv``, reads them
back, refuses a folder that holds another run, and names a damaged file instead of failing.
"""
