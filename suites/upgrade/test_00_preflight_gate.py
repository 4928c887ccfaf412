"""Stage 1, the pre-flight gate: the pre-flight suite's own checks, re-used (not copied).

A failure here changes nothing: every later stage is skipped.
"""

from suites.preflight.test_preflight import *  # noqa: F401,F403
