"""Fixtures shared by every test module."""

from mockpins import mock_factory  # noqa: F401  (registers the fixture for all tests)
