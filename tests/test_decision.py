"""Stability (K of N), once-per-scene emission, red/unsure reporting and meter rules."""

from __future__ import annotations

import pytest

from device.config import DecisionConfig
from device.decision import Decider, Light, meter_value
from device.errors import ConfigError
from device.reading import DigitResult, Reading


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def reading(text: str, confident: bool = True, reason: str = "") -> Reading:
    digits = tuple(
        DigitResult(int(c), 0.99 if confident else 0.4, (10 * i, 0, 8, 12))
        for i, c in enumerate(text.replace(" ", ""))
    )
    return Reading(text, digits, confident, reason if not confident else "")


EMPTY = Reading("", (), False, "no digits")


def make(clock: FakeClock | None = None, **kw: object) -> tuple[Decider, FakeClock]:
    clock = clock or FakeClock()
    return Decider(DecisionConfig(**kw), clock), clock  # type: ignore[arg-type]


def feed(decider: Decider, clock: FakeClock, readings: list[Reading], dt: float = 0.1) -> list:
    out = []
    for r in readings:
        out.append(decider.update(r))
        clock.now += dt
    return out


def accepted_texts(decisions: list) -> list[str]:
    return [d.event.value for d in decisions if d.event is not None and d.event.accepted]


def test_accepts_only_after_k_of_n_confident_frames() -> None:
    decider, clock = make(stable_k=3, stable_n=5)
    decisions = feed(decider, clock, [reading("42")] * 3)
    assert [d.light for d in decisions] == [Light.PENDING, Light.PENDING, Light.STABLE]
    assert [d.accepted for d in decisions] == [False, False, True]
    assert decisions[2].event is not None and decisions[2].event.value == "42"


def test_k_of_n_tolerates_flicker_within_window() -> None:
    decider, clock = make(stable_k=3, stable_n=5)
    seq = [reading("42"), reading("47"), reading("42"), reading("4", False), reading("42")]
    decisions = feed(decider, clock, seq)
    assert accepted_texts(decisions) == ["42"]
    assert decisions[-1].accepted


def test_window_forgets_frames_older_than_n() -> None:
    decider, clock = make(stable_k=3, stable_n=5)
    seq = [reading("42"), reading("42")] + [reading("7", False)] * 3 + [reading("42")]
    assert accepted_texts(feed(decider, clock, seq)) == []


def test_accepted_reading_is_emitted_once_while_in_view() -> None:
    decider, clock = make()
    decisions = feed(decider, clock, [reading("123")] * 20)
    assert accepted_texts(decisions) == ["123"]
    assert all(d.light is Light.STABLE and d.stable_text == "123" for d in decisions[2:])


def test_a_different_accepted_reading_is_a_new_scene() -> None:
    decider, clock = make()
    seq = [reading("12")] * 4 + [reading("13")] * 4 + [reading("12")] * 4
    assert accepted_texts(feed(decider, clock, seq)) == ["12", "13", "12"]


def test_same_reading_is_emitted_again_after_digits_gone_for_clear_after() -> None:
    decider, clock = make(clear_after_s=2.0)
    feed(decider, clock, [reading("5")] * 4)
    # Empty for 1 s only: the scene has not changed, so "5" is not sent again.
    short = feed(decider, clock, [EMPTY] * 10 + [reading("5")] * 4, dt=0.1)
    assert accepted_texts(short) == []
    long = feed(decider, clock, [EMPTY] * 25 + [reading("5")] * 4, dt=0.1)
    assert accepted_texts(long) == ["5"]


def test_unsure_digits_light_red_and_are_reported_once_per_scene() -> None:
    decider, clock = make(stable_k=3, stable_n=5)
    decisions = feed(decider, clock, [reading("8", False, "low confidence 0.41")] * 12)
    assert all(d.light is Light.UNSURE for d in decisions)
    rejected = [d.event for d in decisions if d.event is not None]
    assert len(rejected) == 1
    assert not rejected[0].accepted and rejected[0].reason == "low confidence 0.41"
    assert decisions[4].event is rejected[0]  # once the whole window (N=5) was unreadable


def test_empty_frames_are_not_red() -> None:
    decider, clock = make()
    assert {d.light for d in feed(decider, clock, [EMPTY] * 5)} == {Light.EMPTY}


def test_meter_accepts_growing_values() -> None:
    decider, clock = make(meter=True)
    seq = [reading("100")] * 3 + [reading("101")] * 3 + [reading("250")] * 3
    assert accepted_texts(feed(decider, clock, seq)) == ["100", "101", "250"]
    assert decider.last_meter_value == 250


def test_meter_rejects_a_value_going_backwards_once_and_keeps_last_value() -> None:
    decider, clock = make(meter=True)
    decisions = feed(decider, clock, [reading("500")] * 3 + [reading("499")] * 6)
    rejected = [d.event for d in decisions if d.event is not None and not d.event.accepted]
    assert len(rejected) == 1
    assert rejected[0].value == "499"
    assert "backwards" in rejected[0].reason and "500" in rejected[0].reason
    assert decider.last_meter_value == 500
    assert decisions[-1].light is Light.UNSURE and decisions[-1].stable_text is None
    # The true value, next, is still accepted.
    assert accepted_texts(feed(decider, clock, [reading("501")] * 3)) == ["501"]


def test_meter_rate_limit_depends_on_elapsed_time() -> None:
    decider, clock = make(meter=True, max_rate_per_hour=100.0)
    feed(decider, clock, [reading("1000")] * 3)
    clock.now += 1800  # half an hour: at most +50
    too_fast = feed(decider, clock, [reading("1080")] * 3)
    assert [d.event.reason for d in too_fast if d.event] == [
        "meter rose too fast (from 1000 to 1080 in 30.0 min; at most 100 per hour)"
    ]
    ok = feed(decider, clock, [reading("1040")] * 3)
    assert accepted_texts(ok) == ["1040"]


def test_meter_joins_groups_split_by_wide_gaps_between_wheels() -> None:
    decider, clock = make(meter=True)
    feed(decider, clock, [reading("12 34")] * 3)
    assert decider.last_meter_value == 1234
    assert meter_value("") is None
    rejected = [d.event for d in feed(decider, clock, [reading("1233")] * 3) if d.event]
    assert [e.accepted for e in rejected] == [False]


def test_stable_k_above_n_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"decision.stable_k \(6\) must not exceed"):
        DecisionConfig(stable_k=6, stable_n=5)
