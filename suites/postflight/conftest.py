import pytest


@pytest.fixture(scope="session", autouse=True)
def _restart_counts_at_start(states_at_start) -> None:
    """Taken before the first check, compared by the last one."""
