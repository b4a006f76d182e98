"""The LED panel: green = confident reading, red = digits seen but unsure, status = heartbeat.

gpiozero is imported only here, inside ``GpioLeds``; the pin factory is passed in (None = the
gpiozero default, which honours ``GPIOZERO_PIN_FACTORY``), so tests use gpiozero's MockFactory.
LED changes are logged at INFO so a run without hardware (``make demo``) shows them.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Protocol

from device.config import LedsConfig
from device.decision import Light
from device.errors import PinError
from device.lifecycle import Closeable

logger = logging.getLogger(__name__)

# Status LED patterns (seconds on, seconds off): a slow heartbeat while all is well, a fast
# flicker that is easy to tell apart from across a room when the camera or model fails.
HEARTBEAT = (0.1, 1.9)
ERROR_BLINK = (0.1, 0.1)

NO_GPIO_HINT = (
    "no GPIO here: set GPIOZERO_PIN_FACTORY=mock to simulate the LEDs, "
    "or leds.enabled = false (--no-leds) to run without them"
)


class LedPanel(Protocol):
    """What the daemon drives; ``GpioLeds`` and ``NullLeds`` implement it."""

    def show(self, light: Light, accepted: bool, now: float) -> None:
        """Reflect one frame's decision; ``accepted`` = a new reading was accepted now."""

    def tick(self, now: float) -> None:
        """Let timed states expire (green hold) when no frame arrives."""

    def set_error(self, error: bool) -> None:
        """Switch the status LED between heartbeat and the error pattern."""

    def off(self) -> None: ...

    def close(self) -> None: ...


class NullLeds(Closeable):
    """No LEDs (``leds.enabled = false``): every call does nothing."""

    def show(self, light: Light, accepted: bool, now: float) -> None:
        pass

    def tick(self, now: float) -> None:
        pass

    def set_error(self, error: bool) -> None:
        pass

    def off(self) -> None:
        pass

    def close(self) -> None:
        pass


class GpioLeds(Closeable):
    """Three gpiozero LEDs on BCM pins from ``LedsConfig``."""

    def __init__(self, config: LedsConfig, pin_factory: Any = None) -> None:
        from gpiozero import LED
        from gpiozero.exc import BadPinFactory, GPIOZeroError, PinFactoryFallback

        self._hold_s = config.green_hold_s
        self._leds: list[Any] = []
        try:
            # Fallback warnings end in BadPinFactory, which we turn into one clear sentence.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PinFactoryFallback)
                for pin in (config.green, config.red, config.status):
                    self._leds.append(
                        LED(pin, active_high=config.active_high, pin_factory=pin_factory)
                    )
        except BadPinFactory as e:
            self._close_leds()
            raise PinError(NO_GPIO_HINT) from e
        except GPIOZeroError as e:
            self._close_leds()
            raise PinError(f"the LED pins cannot be used ({e}); check the [leds] pins") from e
        self._green, self._red, self._status = self._leds
        self._green_until: float | None = None
        self._red_on = False
        self._error: bool | None = None
        self.closed = False
        self.set_error(False)

    @property
    def green(self) -> Any:
        return self._green

    @property
    def red(self) -> Any:
        return self._red

    @property
    def status(self) -> Any:
        return self._status

    def show(self, light: Light, accepted: bool, now: float) -> None:
        if accepted:
            if self._green_until is None:
                logger.info("LED green on")
                self._green.on()
            self._green_until = now + self._hold_s
        red = light is Light.UNSURE
        if red != self._red_on:
            logger.info("LED red %s", "on" if red else "off")
            self._red.value = red
            self._red_on = red
        self.tick(now)

    def tick(self, now: float) -> None:
        if self._green_until is not None and now >= self._green_until:
            logger.info("LED green off")
            self._green.off()
            self._green_until = None

    def set_error(self, error: bool) -> None:
        if error == self._error:
            return
        self._error = error
        on_time, off_time = ERROR_BLINK if error else HEARTBEAT
        logger.info("LED status %s", "error blink" if error else "heartbeat")
        self._status.blink(on_time=on_time, off_time=off_time, background=True)

    def off(self) -> None:
        for led in self._leds:
            led.off()
        if self._green_until is not None or self._red_on or self._error is not None:
            logger.info("LEDs off")
        self._green_until = None
        self._red_on = False
        self._error = None

    def close(self) -> None:
        if self.closed:
            return
        self.off()
        self._close_leds()
        self.closed = True

    def _close_leds(self) -> None:
        for led in self._leds:
            led.close()


def make_leds(config: LedsConfig, pin_factory: Any = None) -> GpioLeds | NullLeds:
    """The panel the config asks for; raises PinError when GPIO is wanted but unavailable."""
    if not config.enabled:
        logger.info("LEDs disabled (leds.enabled = false)")
        return NullLeds()
    return GpioLeds(config, pin_factory=pin_factory)
