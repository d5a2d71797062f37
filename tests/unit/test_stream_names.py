"""The lost-record convention's companion names: NAME_LOST, or name_lost for names with lower-case letters."""

from __future__ import annotations

import pytest
from pyaya.maps import lost_counter_name


@pytest.mark.parametrize(
    ("stream", "companion"),
    [("EVENTS", "EVENTS_LOST"), ("NEW_FLOWS", "NEW_FLOWS_LOST"), ("events", "events_lost"), ("Events", "Events_lost")],
)
def test_companion_names_follow_the_streams_case(stream: str, companion: str) -> None:
    assert lost_counter_name(stream) == companion
