"""Shared pytest setup: Hypothesis profiles.

`default` keeps the whole suite well under a minute on 2 cores; `thorough`
(HYPOTHESIS_PROFILE=thorough, or --hypothesis-profile=thorough) runs many more
examples and is what CI runs in its second pass.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=40, deadline=None)
settings.register_profile(
    "thorough", max_examples=400, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
