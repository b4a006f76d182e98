"""Fixtures shared by every test module."""

import logging
from collections.abc import Iterator

import pytest
from mockpins import mock_factory  # noqa: F401  (registers the fixture for all tests)


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """Undo logging set up by a command run in-process (``logging.basicConfig`` in a main()).

    Its handler writes to the test's captured stderr, which pytest closes afterwards: a later
    log record from another thread (an MQTT client, a daemon) would hit a closed stream.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
