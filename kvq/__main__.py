"""``python -m kvq ...`` runs the ``kvq`` command."""

from kvq.cli import main

raise SystemExit(main())
