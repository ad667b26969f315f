"""Each gateway's newest poll number: an older poll that arrives late is refused, for a while."""

from __future__ import annotations

import time

from custos.orchestrator.notifier import POLL_MEMORY_S, TaskNotifier


def test_a_late_poll_is_refused_and_a_newer_one_overtakes_a_waiting_poll() -> None:
    notifier = TaskNotifier()
    assert notifier.poll_arrived("site-a", 5)
    assert notifier.is_newest_poll("site-a", 5)
    assert not notifier.poll_arrived("site-a", 3), "numbered before poll 5: given up on"
    assert notifier.is_newest_poll("site-a", 5)
    assert notifier.poll_arrived("site-b", 1), "each gateway has its own numbers"
    assert notifier.poll_arrived("site-a", 7)
    assert not notifier.is_newest_poll("site-a", 5), "poll 5, still waiting, was overtaken"


def test_a_gateway_restarted_with_its_clock_set_back_is_served_again_after_a_while() -> None:
    notifier = TaskNotifier()
    notifier._newest_poll["site-a"] = (900, time.monotonic() - POLL_MEMORY_S - 1)
    assert notifier.poll_arrived("site-a", 100)
    assert notifier.is_newest_poll("site-a", 100)
