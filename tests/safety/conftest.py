import pytest

from chat.safety.policy import forget_safety_policy


@pytest.fixture(autouse=True)
def _fresh_safety_policy():
    """The policy is cached per process: each test reads its own database's row."""
    forget_safety_policy()
    yield
    forget_safety_policy()
