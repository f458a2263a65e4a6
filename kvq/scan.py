"""Deprecated import path: the engine lives in :mod:`kvq.engine` (``kvq.scan`` is the
function that runs a scan).  ``from kvq.scan import Engine`` keeps working for a release."""

from __future__ import annotations

import sys

from kvq import engine as _engine

sys.modules[__name__] = _engine
