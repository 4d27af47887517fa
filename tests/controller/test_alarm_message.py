"""The nurse's alarm sentence says once what happened to the infusion.

The head ("… on chair-2: infusion stopped at 7.9 of 100 mL.") states the effect; the
kernel's detail ends with the same words ("…; the infusion is stopped."), which read as a
second alarm in `pumpctl status` and `alarms`. The detail keeps everything else.
"""

from __future__ import annotations

from pumpd.controller.translate import alarm_message


def test_the_effect_is_said_once() -> None:
    message = alarm_message(
        "tick.pump.alarm.occlusion_downstream",
        "chair-2",
        "stopped",
        7911,
        100_000,
        "The pump reports occlusion downstream; the infusion is stopped.",
    )
    assert message == (
        "Downstream occlusion on chair-2: infusion stopped at 7.9 of 100 mL. "
        "The pump reports occlusion downstream."
    )


def test_a_detail_with_another_effect_or_more_words_is_kept_whole() -> None:
    paused = "Under-infusion, the infusion is paused: check the line for occlusion or leak."
    message = alarm_message("tick.volume.under_infusion", "chair-1", "paused", 500, 1000, paused)
    assert message.endswith(paused)
    other = "The pump reports 0.01 mL/h while paused; the infusion is stopped."
    assert alarm_message("tick.x", "chair-1", "paused", 0, 1000, other).endswith(other)
