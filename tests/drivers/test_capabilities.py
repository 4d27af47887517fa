"""The capability record: the shipped declarations, and malformed tables refused by key."""

from __future__ import annotations

import copy
import tomllib
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpd.drivers.base import AlarmFlag, ProfileError
from pumpd.drivers.capabilities import (
    CommWatchdog,
    Confirmation,
    MaxRateSource,
    PumpCapabilities,
    RestartEvidence,
    WatchdogSetter,
    alarm_names,
    parse_capabilities,
)
from pumpd.drivers.newera_mapping import capabilities as newera_capabilities
from pumpd.drivers.profile import load_profile, parse_profile


def shipped_profile() -> dict[str, Any]:
    text = (resources.files("pumpd.drivers.profiles") / "gip-mb1.toml").read_text()
    return tomllib.loads(text, parse_float=Decimal)


def table() -> dict[str, Any]:
    caps: dict[str, Any] = shipped_profile()["capabilities"]
    return copy.deepcopy(caps)


def test_gip_mb1_declares_everything_its_register_map_has() -> None:
    caps = load_profile("gip-mb1").capability_record
    assert caps.confirmation is Confirmation.SEQUENCE_ECHO
    assert caps.pump_vtbi_stop
    assert caps.kvo
    assert caps.priming
    assert caps.reports_pressure
    assert caps.reports_battery
    assert caps.watchdog == CommWatchdog(Decimal(1), Decimal(65535), WatchdogSetter.PUMPD)
    assert caps.max_rate_source is MaxRateSource.REGISTER
    assert caps.restart_evidence is RestartEvidence.UPTIME_REGISTER
    assert caps.max_rate_ml_h is None
    assert alarm_names(caps.detected_alarms) == [
        m.name for m in AlarmFlag if m not in (AlarmFlag.NONE, AlarmFlag.UNKNOWN)
    ]


def test_new_era_declares_what_the_ne1000_manual_gives() -> None:
    safe = newera_capabilities(safe_mode=True)
    assert safe.confirmation is Confirmation.STATE_READBACK
    assert safe.pump_vtbi_stop  # VOL: the pump stops when the volume is dispensed
    assert not (safe.kvo)
    assert not (safe.reports_pressure)
    assert not (safe.reports_battery)
    assert safe.watchdog is not None
    assert (safe.watchdog.min_s, safe.watchdog.max_s) == (1, 255)
    # A stall is its only occlusion alarm; it cannot see air, a door or a battery.
    assert safe.detected_alarms & AlarmFlag.OCCLUSION_DOWNSTREAM
    for absent in (AlarmFlag.AIR_IN_LINE, AlarmFlag.DOOR_OPEN, AlarmFlag.OCCLUSION_UPSTREAM):
        assert not safe.detected_alarms & absent
    assert safe.max_rate_source is MaxRateSource.PUMP_REFUSES
    # No uptime, no switch-on count: a restart is the A?R reset it reports.
    assert safe.restart_evidence is RestartEvidence.RESET_ALARM
    assert newera_capabilities(safe_mode=False).watchdog is None


def test_as_dict_is_plain_json() -> None:
    shown = load_profile("gip-mb1").capability_record.as_dict()
    assert shown["watchdog"] == {"min_s": "1", "max_s": "65535", "set_by": "pumpd"}
    assert shown["max_rate_ml_h"] is None
    assert shown["max_rate_source"] == "register"
    assert shown["restart_evidence"] == "uptime-register"
    no_wd = newera_capabilities(safe_mode=False).as_dict()
    assert no_wd["watchdog"] is None


def test_a_dosing_pump_table_parses() -> None:
    caps = parse_capabilities(
        {
            "confirmation": "state-readback",
            "pump_vtbi_stop": False,
            "watchdog": {"min_s": Decimal("0.001"), "max_s": 10, "set_by": "pump-panel"},
            "detected_alarms": ["SYSTEM_FAULT"],
            "priming": False,
            "kvo": False,
            "reports_pressure": False,
            "reports_battery": False,
            "max_rate_source": "profile",
            "restart_evidence": "switch-on-counter",
            "max_rate_ml_h": 12000,
        }
    )
    assert caps.watchdog is not None
    assert caps.watchdog.set_by is WatchdogSetter.PUMP_PANEL
    assert caps.watchdog.accepts(Decimal(10))
    assert not caps.watchdog.accepts(Decimal(11))
    assert caps.max_rate_ml_h == 12000
    assert not caps.pump_vtbi_stop
    no_watchdog = parse_capabilities({**table(), "watchdog": False})
    assert no_watchdog.watchdog is None


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"confirmation": "echo"}, "capabilities.confirmation"),
        ({"pump_vtbi_stop": "yes"}, "capabilities.pump_vtbi_stop"),
        ({"kvo": 1}, "capabilities.kvo"),
        ({"watchdog": True}, "capabilities.watchdog"),
        ({"watchdog": {"min_s": 0, "max_s": 5, "set_by": "pumpd"}}, "capabilities.watchdog.min_s"),
        ({"watchdog": {"min_s": 5, "max_s": 1, "set_by": "pumpd"}}, "capabilities.watchdog"),
        ({"watchdog": {"min_s": 1, "max_s": 5, "set_by": "me"}}, "capabilities.watchdog.set_by"),
        ({"watchdog": {"min_s": 1, "max_s": 5}}, "capabilities.watchdog.set_by"),
        ({"detected_alarms": ["SMOKE"]}, "capabilities.detected_alarms.0"),
        ({"detected_alarms": ["UNKNOWN"]}, "capabilities.detected_alarms.0"),
        ({"detected_alarms": ["AIR_IN_LINE", "AIR_IN_LINE"]}, "capabilities.detected_alarms"),
        ({"max_rate_source": "guess"}, "capabilities.max_rate_source"),
        ({"restart_evidence": "connect"}, "capabilities.restart_evidence"),
        ({"max_rate_ml_h": 100}, "capabilities.max_rate_ml_h"),
        ({"max_rate_source": "profile"}, "capabilities.max_rate_ml_h"),
        ({"max_rate_source": "config", "max_rate_ml_h": 0}, "capabilities.max_rate_ml_h"),
        ({"reports_pressure": None}, "capabilities.reports_pressure"),
        ({"colour": "blue"}, "capabilities.colour"),
    ],
)
def test_a_bad_table_is_refused_naming_the_key(change: dict[str, Any], key: str) -> None:
    with pytest.raises(ProfileError) as caught:
        parse_capabilities({**table(), **change})
    assert caught.value.key == key


@pytest.mark.parametrize("missing", sorted(table().keys()))
def test_every_key_is_required(missing: str) -> None:
    data = table()
    del data[missing]
    with pytest.raises(ProfileError) as caught:
        parse_capabilities(data)
    assert caught.value.key == f"capabilities.{missing}"


def test_a_profile_without_capabilities_is_refused() -> None:
    data = shipped_profile()
    del data["capabilities"]
    with pytest.raises(ProfileError) as caught:
        parse_profile(data)
    assert caught.value.key == "capabilities"


def test_a_profile_with_a_bad_cross_field_rule_is_refused_by_key() -> None:
    data = shipped_profile()
    data["capabilities"]["max_rate_ml_h"] = 100
    with pytest.raises(ProfileError) as caught:
        parse_profile(data)
    assert caught.value.key == "capabilities.max_rate_ml_h"


_FLAGS = [m for m in AlarmFlag if m not in (AlarmFlag.NONE, AlarmFlag.UNKNOWN)]


@given(st.sets(st.sampled_from(_FLAGS)))
def test_detected_alarms_round_trip_through_the_table(chosen: set[AlarmFlag]) -> None:
    names = [m.name for m in _FLAGS if m in chosen]
    caps = parse_capabilities({**table(), "detected_alarms": names})
    assert alarm_names(caps.detected_alarms) == names


def test_the_record_refuses_unknown_as_a_detected_alarm() -> None:
    with pytest.raises(ValueError, match="UNKNOWN"):
        PumpCapabilities(
            confirmation=Confirmation.SEQUENCE_ECHO,
            pump_vtbi_stop=True,
            watchdog=None,
            detected_alarms=AlarmFlag.UNKNOWN,
            priming=True,
            kvo=True,
            reports_pressure=True,
            reports_battery=True,
            max_rate_source=MaxRateSource.REGISTER,
            restart_evidence=RestartEvidence.UPTIME_REGISTER,
        )


def test_a_watchdog_must_be_finite_decimal_seconds() -> None:
    with pytest.raises(ValueError, match="Decimal"):
        CommWatchdog(1, Decimal(2), WatchdogSetter.PUMPD)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        CommWatchdog(Decimal(1), Decimal("Infinity"), WatchdogSetter.PUMPD)


def test_a_gip_mb1_profile_must_show_restarts_by_its_uptime_register() -> None:
    data = shipped_profile()
    data["capabilities"]["restart_evidence"] = "reset-alarm"
    with pytest.raises(ProfileError) as caught:
        parse_profile(data)
    assert caught.value.key == "capabilities.restart_evidence"
