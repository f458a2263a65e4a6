"""Deprecated import path: the estimators live in :mod:`kvq.estimators`; ``kvq.perturb``
keeps working for a release."""

from __future__ import annotations

import sys

from kvq import estimators as _estimators

sys.modules[__name__] = _estimators
