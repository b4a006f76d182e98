"""LED panel on gpiozero's MockFactory: pin state sequences for green/red/status."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from gpiozero.pins.mock import MockFactory
from mockpins import pin_states

from device.config import LedsConfig
from device.decision import Light
from device.errors import PinError
from device.leds import GpioLeds, NullLeds, make_leds


def test_green_lights_for_hold_time_after_accept(mock_factory: MockFactory) -> None:
    with GpioLeds(LedsConfig(green_hold_s=2.0)) as leds:
        leds.show(Light.STABLE, accepted=True, now=10.0)
        leds.show(Light.STABLE, accepted=False, now=11.0)
        leds.tick(11.9)
        assert leds.green.is_lit
        leds.tick(12.0)
        assert not leds.green.is_lit
    assert pin_states(mock_factory, 17) == [False, True, False]


def test_a_second_accept_extends_green_without_flicker(mock_factory: MockFactory) -> None:
    with GpioLeds(LedsConfig(green_hold_s=1.0)) as leds:
        leds.show(Light.STABLE, accepted=True, now=0.0)
        leds.show(Light.STABLE, accepted=True, now=0.8)
        leds.tick(1.5)
        assert leds.green.is_lit
        leds.tick(1.8)
    assert pin_states(mock_factory, 17) == [False, True, False]


def test_red_follows_unsure_frames(mock_factory: MockFactory) -> None:
    with GpioLeds(LedsConfig()) as leds:
        for light in [Light.EMPTY, Light.UNSURE, Light.UNSURE, Light.PENDING, Light.UNSURE]:
            leds.show(light, accepted=False, now=0.0)
        assert leds.red.is_lit
    assert pin_states(mock_factory, 27) == [False, True, False, True, False]


def test_active_low_inverts_pin_levels(mock_factory: MockFactory) -> None:
    with GpioLeds(LedsConfig(active_high=False, green_hold_s=0.5)) as leds:
        leds.show(Light.STABLE, accepted=True, now=0.0)
        leds.tick(1.0)
    # Off is high for an active-low LED; it starts high when the LED is created.
    assert pin_states(mock_factory, 17)[-3:] == [True, False, True]


def test_status_heartbeats_then_blinks_fast_on_error(mock_factory: MockFactory) -> None:
    with GpioLeds(LedsConfig()) as leds:
        time.sleep(0.35)
        heartbeat_changes = len(mock_factory.pin(22).states)
        leds.set_error(True)
        mock_factory.pin(22).clear_states()
        time.sleep(0.65)  # ~6 changes; a loaded machine may lag a little
        error_changes = len(mock_factory.pin(22).states)
        leds.set_error(False)
    # Heartbeat: one 0.1 s flash per 2 s; error: a change every 0.1 s.
    assert heartbeat_changes <= 3
    assert error_changes >= 4
    assert not mock_factory.pin(22).state


def test_close_turns_every_led_off(mock_factory: MockFactory) -> None:
    leds = GpioLeds(LedsConfig(green_hold_s=60))
    leds.show(Light.STABLE, accepted=True, now=0.0)
    leds.show(Light.UNSURE, accepted=False, now=0.1)
    leds.close()
    assert leds.closed
    assert pin_states(mock_factory, 17)[-1] is False
    assert pin_states(mock_factory, 27)[-1] is False
    assert pin_states(mock_factory, 22)[-1] is False


def test_pin_in_use_is_a_pin_error(mock_factory: MockFactory) -> None:
    with GpioLeds(LedsConfig()), pytest.raises(PinError, match="cannot be used"):
        GpioLeds(LedsConfig())


def test_disabled_leds_are_null() -> None:
    assert isinstance(make_leds(LedsConfig(enabled=False)), NullLeds)


def test_no_gpio_fails_with_one_sentence_naming_the_fixes() -> None:
    # A fresh interpreter with no pin factory configured, on a machine without GPIO.
    code = (
        "from device.config import LedsConfig\n"
        "from device.leds import make_leds\n"
        "make_leds(LedsConfig())\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "."}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30
    )
    if proc.returncode == 0:
        pytest.skip("this machine has GPIO; the no-GPIO message cannot be shown here")
    assert "PinError: no GPIO here: set GPIOZERO_PIN_FACTORY=mock" in proc.stderr
    assert "leds.enabled = false" in proc.stderr
