# The drift tests' embedded questions and reference, shared with the dashboard's browser tests.
from tests.monitoring.test_drift import embedded, reference  # noqa: F401
