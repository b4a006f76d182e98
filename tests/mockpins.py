"""gpiozero's own MockFactory installed as the pin factory for a test, and a pin-history helper."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory


@pytest.fixture
def mock_factory() -> Iterator[MockFactory]:
    """Install MockFactory as the default pin factory and restore the previous one after."""
    previous = Device.pin_factory
    factory = MockFactory()
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = previous


def pin_states(factory: MockFactory, pin: int) -> list[bool]:
    """Every state a mock pin has been driven to, oldest first."""
    return [bool(s.state) for s in factory.pin(pin).states]
