# A real local webhook receiver, for every monitoring test that delivers alerts.
from tests.monitoring.test_alerts import receiver_with  # noqa: F401
