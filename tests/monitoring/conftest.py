# Shared by the browser tests: the headless Chromium, and the drift tests' embedded questions and reference.
from tests.monitoring.test_drift import embedded, reference  # noqa: F401
from tests.review.test_trainer_flow import browser  # noqa: F401
