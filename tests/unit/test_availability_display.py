"""The availability display rule (shop.domain.availability): every mode at and around its boundaries."""

from __future__ import annotations

import pytest

from shop.domain.availability import AvailabilityDisplay, DisplayRule, ShownAvailability, shown_availability
from shop.settings import Settings

EXACT = DisplayRule(AvailabilityDisplay.EXACT)
ONLY_N = DisplayRule(AvailabilityDisplay.ONLY_N_LEFT, only_n_left_threshold=3)
COARSE = DisplayRule(AvailabilityDisplay.COARSE)


@pytest.mark.parametrize(("available", "threshold", "expected"), [
    (0, None, ShownAvailability("sold_out", 0)),
    (-2, None, ShownAvailability("sold_out", 0)),  # never a negative count
    (1, None, ShownAvailability("in_stock", 1)),
    (500, None, ShownAvailability("in_stock", 500)),
    (5, 5, ShownAvailability("low_stock", 5)),
    (6, 5, ShownAvailability("in_stock", 6)),
])
def test_exact_always_shows_the_count(available, threshold, expected):
    assert shown_availability(available, threshold, EXACT) == expected
    assert shown_availability(available, threshold) == expected  # the default is SPEC's contract


@pytest.mark.parametrize(("available", "threshold", "expected"), [
    (0, None, ShownAvailability("sold_out", 0)),  # sold out hides nothing
    (0, 5, ShownAvailability("sold_out", 0)),
    (1, 5, ShownAvailability("low_stock", 1)),
    (5, 5, ShownAvailability("low_stock", 5)),  # at the SKU's threshold: "only 5 left"
    (6, 5, ShownAvailability("in_stock", None)),  # above: no count
    (0, 0, ShownAvailability("sold_out", 0)),
    (1, 0, ShownAvailability("in_stock", None)),  # threshold 0: only a sell-out shows a count
    (3, None, ShownAvailability("in_stock", 3)),  # no SKU threshold: the shop-wide one (3)
    (4, None, ShownAvailability("in_stock", None)),
    (4, 10, ShownAvailability("low_stock", 4)),  # the SKU's own threshold wins over the shop's
])
def test_only_n_left_shows_the_count_at_or_below_the_threshold(available, threshold, expected):
    assert shown_availability(available, threshold, ONLY_N) == expected


@pytest.mark.parametrize(("available", "threshold", "state"), [
    (0, None, "sold_out"), (0, 5, "sold_out"), (1, 5, "low_stock"), (5, 5, "low_stock"), (6, 5, "in_stock"),
    (1, None, "in_stock"), (10**9, None, "in_stock"),
])
def test_coarse_never_shows_a_count(available, threshold, state):
    assert shown_availability(available, threshold, COARSE) == ShownAvailability(state, None)


def test_availability_states_are_the_same_in_every_mode():
    for available in range(0, 12):
        for threshold in (None, 0, 4, 10):
            states = {shown_availability(available, threshold, rule).availability for rule in (EXACT, ONLY_N, COARSE)}
            assert len(states) == 1


@pytest.mark.parametrize(("value", "mode"), [
    (None, AvailabilityDisplay.EXACT), ("", AvailabilityDisplay.EXACT), ("exact", AvailabilityDisplay.EXACT),
    ("only_n_left", AvailabilityDisplay.ONLY_N_LEFT), (" Coarse ", AvailabilityDisplay.COARSE),
    ("only-n-left", AvailabilityDisplay.COARSE),  # unknown: the mode that shows no count, never a failure
])
def test_the_setting(value, mode):
    environ = {} if value is None else {"AVAILABILITY_DISPLAY": value}
    settings = Settings.from_environ({**environ, "AVAILABILITY_ONLY_N_LEFT_THRESHOLD": "7"})
    assert settings.availability_rule() == DisplayRule(mode, 7)
    assert Settings.from_environ({}).availability_rule() == DisplayRule(AvailabilityDisplay.EXACT, 5)
