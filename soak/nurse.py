"""One pump's nurse: runs that pump's sessions from their scripts through the control socket.

A session follows its script (wrong actions first, then the right ones; a pause, an
adjustment, a stop, a vitals reading out of band, a fault, each at its drawn moment), but
whatever happens (an alarm, a kill of the daemon, a refusal) the nurse then reads the
session's state and takes the documented step towards its end: clear the cause and
press the pump's alarm key, acknowledge, stop, observe, discharge, or abort. A session
that cannot be brought to an end within a generous bound is written down as unfinished
(the checker makes it a violation).

Every call is one JSON-RPC request through :class:`pumpd.cli.client.Client`, the same
client `pumpctl` uses, as staff members logged in at a shared station (one programmer and
one witness per pump, so pumps never share a staff id and a wrong PIN locks only its own).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from typing import Any

from pumpsim.errors import ControlRequestFailed

from pumpd.cli.client import Client, ClientError, DaemonUnreachable, RpcError
from pumpd.drivers import Command
from soak.kinds import KINDS, PumpKind
from soak.panel import PanelError, PanelUncertain
from soak.plan import FaultPlan, SessionScript
from soak.sampler import Sampler
from soak.world import World

INFUSION_MIN = 40.0
OBSERVATION_MIN = 30.0
VITALS_EVERY_MIN = 8.0
NORMAL_VITALS = {"bp": "122/78", "hr": 74, "spo2": 98}
EXCURSION_VITALS = {
    "pause_band": {"bp": "122/78", "hr": 125, "spo2": 97},  # pause band: hr > 120
    "stop_band": {"bp": "122/78", "hr": 80, "spo2": 88},  # stop band: spo2 < 90
}
FINAL = frozenset({"DISCHARGED", "ABORTED"})
LOGIN_REQUIRED = -32002
DELIVERING = frozenset({"PRIMING", "INFUSING", "KVO", "RUNNING"})


class Disrupted(Exception):
    """The daemon went away during a call; the outcome of that call is unknown."""


@dataclass
class SessionRecord:
    pump_id: str
    number: int
    session_id: str | None = None
    began_mono: float = 0.0
    ended_mono: float = 0.0
    outcome: str = "unfinished"
    """discharged, aborted, or unfinished (with the state it was stuck in)."""
    wrong_accepted: list[str] = field(default_factory=list)
    bad_input_changed: list[str] = field(default_factory=list)


@dataclass
class Nurse:
    world: World
    pump_id: str
    unit: int
    scale: float
    scripts: list[SessionScript]
    pins: dict[str, str]
    programmer: str
    witness: str
    finish_bound_s: float = 120.0
    sampler: Sampler | None = None
    kind: PumpKind = KINDS["tcp"]
    """The pump's kind: its protocol, its prime, its faults."""
    records: list[SessionRecord] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)
    _client: Client | None = None
    _token_generation: int = -1
    _active_faults: dict[str, float] = field(default_factory=dict)
    _pending: list[tuple[float, str, Callable[[], None]]] = field(default_factory=list)

    # ------------------------------------------------------------------ plumbing

    def real_s(self, minutes: float) -> float:
        """Real seconds for ``minutes`` of the daemon's (scaled) clock."""
        return minutes * 60.0 / self.scale

    def _connect(self) -> Client:
        deadline = time.monotonic() + 600
        while not self.world.wait_up(0.2):
            # A fault's hold time ends while pumpd is away too: a link left dropped would
            # keep the pump from the next daemon (it could not take it over and recover it).
            self.clear_faults(due_only=True)
            if time.monotonic() > deadline:
                raise Disrupted("the daemon did not come back within 600 s")
        generation = self.world.generation
        if self._client is None or self._token_generation != generation:
            if self._client is not None:
                self._client.close()
            client = Client(str(self.world.stack.socket_path), timeout_s=60)
            login = client.call(
                "staff.login", {"staff_id": self.programmer, "pin": self.pins[self.programmer]}
            )
            client.token = str(login["token"])
            self._client = client
            self._token_generation = generation
        return self._client

    def call(self, method: str, params: dict[str, Any]) -> Any:
        """One request; :class:`Disrupted` when the daemon died under it (after which a
        new daemon is waited for), RpcError when it refused."""
        for _attempt in range(3):
            try:
                return self._connect().call(method, params)
            except DaemonUnreachable as exc:
                self._drop_client()
                raise Disrupted(str(exc)) from exc
            except RpcError as exc:
                if exc.code == LOGIN_REQUIRED and method != "session.confirm":
                    self._drop_client()  # a restarted daemon forgot the login: log in again
                    continue
                raise
        raise Disrupted(f"{method}: login kept being refused")

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None

    def status(self) -> dict[str, Any]:
        """The daemon's view of this pump, waiting (bounded) through a restart."""
        deadline = time.monotonic() + 600
        while True:
            # Also while waiting here (a restart, a pump pumpd has not taken over yet): a
            # fault injected for hold_s must not outlast it because the nurse is waiting.
            self.clear_faults(due_only=True)
            try:
                view: dict[str, Any] = self.call("status", {"pump": self.pump_id})[0]
                return view
            except (Disrupted, RpcError):
                if self.world.finished.is_set() or time.monotonic() > deadline:
                    raise Disrupted("no status from the daemon") from None
                time.sleep(0.2)

    def act(self, name: str, method: str, params: dict[str, Any]) -> Any | None:
        """A right action: None when the daemon refused it or went away (the state
        machine loop decides what next)."""
        self.actions[name] += 1
        try:
            return self.call(method, {"pump": self.pump_id, **params})
        except (RpcError, Disrupted):
            return None

    def act_quietly(self, name: str, method: str, params: dict[str, Any]) -> None:
        """:meth:`act` for a scheduled action, whose reply nobody waits for."""
        self.act(name, method, params)

    def try_wrong(
        self, record: SessionRecord, name: str, method: str, params: dict[str, Any]
    ) -> None:
        """A wrong action: it must be refused. Accepted is written down (a violation)."""
        self.wrong[name] += 1
        try:
            self.call(method, {"pump": self.pump_id, **params})
        except (RpcError, Disrupted):
            return  # refused (or unknown: the daemon died under it)
        record.wrong_accepted.append(name)

    # ------------------------------------------------------------------ faults and time

    def inject(self, plan: FaultPlan) -> None:
        if plan.kind in self.kind.resets:
            if self.sampler is not None:
                # The reboot zeroes the counters: the volume up to it is sampled first.
                self.sampler.add(self.unit, self.world.sim_status(self.unit), None, False)
            self.world.inject(self.unit, plan.kind, True, {})
            return
        self.world.inject(self.unit, plan.kind, True, plan.params)
        self._active_faults[plan.kind] = time.monotonic() + plan.hold_s

    def clear_faults(self, due_only: bool = False) -> None:
        now = time.monotonic()
        for kind, until in list(self._active_faults.items()):
            if due_only and until > now:
                continue
            try:
                self.world.inject(self.unit, kind, False, {})
            except (OSError, ControlRequestFailed):
                continue  # tried again at the next call
            del self._active_faults[kind]

    def schedule(self, at_mono: float, name: str, action: Callable[[], None]) -> None:
        self._pending.append((at_mono, name, action))
        self._pending.sort(key=lambda item: item[0])

    def run_due(self) -> None:
        now = time.monotonic()
        while self._pending and self._pending[0][0] <= now:
            _, _, action = self._pending.pop(0)
            action()
        self.clear_faults(due_only=True)

    def wait_states(self, states: frozenset[str], bound_s: float) -> dict[str, Any]:
        """Poll (running due actions) until the session is in one of ``states``, leaves the
        expected path (ALARM, an end), or ``bound_s`` passes; the last view."""
        deadline = time.monotonic() + bound_s
        leave = FINAL | {"ALARM", "STOPPED", "OBSERVATION", None}
        while True:
            self.run_due()
            view = self.status()
            state = view.get("session_state")
            if state in states or state in leave or time.monotonic() > deadline:
                return view
            time.sleep(0.2)

    def fault_at(self, script: SessionScript, phase: str, phase_real_s: float) -> None:
        plan = script.fault
        if plan is not None and plan.phase == phase:
            at = time.monotonic() + plan.at_fraction * phase_real_s
            self.schedule(at, f"fault {plan.kind}", partial(self.inject, plan))

    # ------------------------------------------------------------------ a session

    def run(self) -> None:
        for script in self.scripts:
            if self.world.finished.is_set():
                return
            record = SessionRecord(self.pump_id, script.number, began_mono=time.monotonic())
            self.records.append(record)
            with contextlib.suppress(Disrupted):
                self.script(script, record)
            self._pending.clear()
            self.finish(script, record)
            record.ended_mono = time.monotonic()

    def script(self, s: SessionScript, record: SessionRecord) -> None:
        weight = f"{s.weight_kg}kg"
        order = {"patient_ref": s.patient_ref, "protocol": self.kind.protocol}
        if s.bad_weight is not None:
            before = self.status()
            self.try_wrong(
                record, "bad_weight", "session.program", {**order, "weight": s.bad_weight}
            )
            after = self.status()
            if (before.get("session_id"), before.get("session_state")) != (
                after.get("session_id"),
                after.get("session_state"),
            ):
                record.bad_input_changed.append(f"bad weight {s.bad_weight!r}")
        programmed = self.act("program", "session.program", {**order, "weight": weight})
        if programmed is None:
            return
        record.session_id = str(programmed["session_id"])
        witness = {"staff_id": self.witness, "pin": self.pins[self.witness]}
        for wrong in s.wrong_before_confirm:
            before = self.status()
            self.try_wrong(record, wrong, *self._wrong_confirm(wrong, s, weight, order))
            after = self.status()
            # pumpd itself may latch an alarm meanwhile (a pump fault, a lost link): no
            # wrong confirm or start leads into ALARM, so that change is not the input's.
            changed = after.get("session_state") != before.get("session_state")
            if changed and after.get("session_state") != "ALARM":
                record.bad_input_changed.append(wrong)
        if self.act("confirm", "session.confirm", {"weight": weight, "witness": witness}) is None:
            return
        if s.abort_before_start:
            self.act("abort", "session.abort", {"reason": "patient declined before the start"})
            return
        self.fault_at(s, "priming", self.real_s(self.kind.prime_min))
        start: dict[str, Any] = {}
        if self.kind.primes:
            if self.act("prime", "session.prime", {"line_disconnected": True}) is None:
                return
            primed_within_s = 10 + 4 * self.real_s(self.kind.prime_min)
            view = self.wait_states(frozenset({"PRIMED"}), primed_within_s)
            if view.get("session_state") != "PRIMED":
                return
        else:
            start = {"primed_by_hand": True}  # the pump cannot prime over its bus
        self.act("vitals", "session.vitals", dict(NORMAL_VITALS))
        if self.act("start", "session.start", start) is None:
            return
        view = self.wait_states(frozenset({"INFUSING"}), 20)
        if view.get("session_state") != "INFUSING":
            return
        self.infuse(s, record)

    def _wrong_confirm(
        self, wrong: str, s: SessionScript, weight: str, order: dict[str, str]
    ) -> tuple[str, dict[str, Any]]:
        witness = {"staff_id": self.witness, "pin": self.pins[self.witness]}
        if wrong == "start_unverified":
            return "session.start", {}
        if wrong == "confirm_same_person":
            return "session.confirm", {"weight": weight}
        if wrong == "confirm_witness_is_programmer":
            me = {"staff_id": self.programmer, "pin": self.pins[self.programmer]}
            return "session.confirm", {"weight": weight, "witness": me}
        if wrong == "confirm_wrong_weight":
            return "session.confirm", {"weight": f"{s.weight_kg + 7}kg", "witness": witness}
        if wrong == "confirm_wrong_pin":
            return "session.confirm", {"weight": weight, "witness": {**witness, "pin": "000000"}}
        raise AssertionError(f"unknown wrong action {wrong}")

    def infuse(self, s: SessionScript, record: SessionRecord) -> None:
        began = time.monotonic()
        length = self.real_s(INFUSION_MIN)

        def at(fraction: float) -> float:
            return began + fraction * length

        self.fault_at(s, "infusing", length)
        if s.pause_at_fraction is None and s.fault is not None and s.fault.phase == "paused":
            # Drawn for a pause this session does not take: it strikes while infusing.
            self.schedule(at(s.fault.at_fraction), "fault", partial(self.inject, s.fault))
        if s.pause_at_fraction is not None:
            self.schedule(at(s.pause_at_fraction), "pause", partial(self._pause, s))
        if s.adjust_at_fraction is not None:
            self.schedule(at(s.adjust_at_fraction), "adjust", self._adjust)
        if s.stop_at_fraction is not None:
            stop = partial(self.act_quietly, "stop", "session.stop", {"reason": "asked to stop"})
            self.schedule(at(s.stop_at_fraction), "stop", stop)
        for wrong in s.wrong_while_infusing:
            attempt = partial(self._wrong_infusing, s, record, wrong)
            self.schedule(at(s.wrong_at_fraction), wrong, attempt)
        if s.vitals_excursion is not None:
            reading = dict(EXCURSION_VITALS[s.vitals_excursion])
            name = f"vitals_{s.vitals_excursion}"
            excursion = partial(self.act_quietly, name, "session.vitals", reading)
            self.schedule(at(s.vitals_at_fraction), name, excursion)
        every = self.real_s(VITALS_EVERY_MIN)
        for k in range(1, int(INFUSION_MIN // VITALS_EVERY_MIN) + 1):
            vitals = partial(self.act_quietly, "vitals", "session.vitals", dict(NORMAL_VITALS))
            self.schedule(began + k * every, "vitals", vitals)
        running = frozenset(
            {"INFUSING", "PAUSED", "PAUSE_REQUESTED", "RESUME_REQUESTED", "ADJUSTING"}
        )
        deadline = began + 3 * length + 30
        while time.monotonic() < deadline:
            self.run_due()
            state = self.status().get("session_state")
            if state not in running:
                return
            time.sleep(0.2)

    def _wrong_infusing(self, s: SessionScript, record: SessionRecord, wrong: str) -> None:
        """Only tried while the session is INFUSING: in another state some of these
        (a resume when paused, an acknowledgement in ALARM) would be right."""
        if self.status().get("session_state") != "INFUSING":
            return
        if wrong == "program_while_infusing":
            order = {
                "patient_ref": s.patient_ref + "-B",
                "protocol": self.kind.protocol,
                "weight": "70kg",
            }
            self.try_wrong(record, wrong, "session.program", order)
            return
        method, params = _WRONG_WHILE_INFUSING[wrong]
        self.try_wrong(record, wrong, method, params)

    def _pause(self, s: SessionScript) -> None:
        if self.act("pause", "session.pause", {"reason": "patient asked for a break"}) is None:
            return
        self.fault_at(s, "paused", s.pause_hold_s)
        resume = partial(self.act_quietly, "resume", "session.resume", {})
        self.schedule(time.monotonic() + s.pause_hold_s, "resume", resume)

    def _adjust(self) -> None:
        proposal = self.act(
            "adjust", "session.adjust", {"duration": "50min", "reason": "patient nauseous"}
        )
        if proposal is not None:
            self.act("adjust_confirm", "session.adjust_confirm", {})

    # ------------------------------------------------------------------ to the end

    def finish(self, s: SessionScript, record: SessionRecord) -> None:
        """Whatever state the session is in, take the documented steps to its end."""
        deadline = time.monotonic() + self.finish_bound_s + 2 * self.real_s(OBSERVATION_MIN)
        observation_fault_armed = False
        resumed_once = False
        last_vitals = 0.0
        state: str | None = None
        while time.monotonic() < deadline:
            self.run_due()
            try:
                view = self.status()
            except Disrupted:
                record.outcome = "unfinished: the run ended"
                return
            state = view.get("session_state")
            sid = view.get("session_id")
            if record.session_id is None and sid is not None and state not in FINAL:
                record.session_id = str(sid)  # programmed, but the reply was lost to a kill
            if state is None or state in FINAL:
                record.outcome = {"DISCHARGED": "discharged", "ABORTED": "aborted"}.get(
                    str(state), "no open session"
                )
                self.clear_faults()
                return
            if state == "ALARM":
                self.answer_alarm(view)
            elif state == "PAUSED":
                if s.resume_after_alarm and not resumed_once:
                    resumed_once = True
                    self.act("resume", "session.resume", {})
                else:
                    self.act("stop", "session.stop", {"reason": "not resumed"})
            elif state == "STOPPED":
                if s.resume_after_stop and not resumed_once:
                    resumed_once = True
                    self.try_wrong(record, "resume_after_stop", "session.resume", {})
                if self.act("observe", "session.observe", {}) is None:
                    self.act("abort", "session.abort", {"reason": "stopped before any start"})
            elif state == "OBSERVATION":
                if not observation_fault_armed:
                    observation_fault_armed = True
                    self.fault_at(s, "observation", self.real_s(OBSERVATION_MIN))
                self.discharge()
            elif state in ("PROGRAMMED", "VERIFIED", "PRIMED"):
                self.act("abort", "session.abort", {"reason": "not started after a disruption"})
            elif state == "INFUSING" and time.monotonic() - last_vitals > self.real_s(
                VITALS_EVERY_MIN
            ):
                last_vitals = time.monotonic()
                self.act("vitals", "session.vitals", dict(NORMAL_VITALS))
            time.sleep(0.1)
        record.outcome = f"unfinished in {state}"
        self.clear_faults()

    def discharge(self) -> None:
        try:
            listing = self.call("session.checklist", {"pump": self.pump_id})
        except (RpcError, Disrupted):
            return
        items = [str(item["id"]) for item in listing.get("items", [])]
        self.actions["discharge"] += 1
        self.act("vitals", "session.vitals", dict(NORMAL_VITALS))  # the discharge's own set
        try:
            self.call("session.discharge", {"pump": self.pump_id, "confirmed": items})
        except (RpcError, Disrupted):
            time.sleep(0.3)  # too early: the observation time is not over yet

    def answer_alarm(self, view: dict[str, Any]) -> None:
        """The nurse at the bedside: fix the cause (faults off), silence the pump at its
        panel (or stop it there if it is still running), then acknowledge in pumpd."""
        self.clear_faults()
        self.act("vitals", "session.vitals", dict(NORMAL_VITALS))  # the patient is well again
        try:
            pump = self.world.sim_status(self.unit)
        except (OSError, ControlRequestFailed):
            return  # tried again at the next look at the session
        try:
            if pump["state"] in DELIVERING:
                self.world.press(self.unit, Command.STOP)
                self.actions["panel_stop"] += 1
            elif pump["state"] == "ALARM":
                self.world.press(self.unit, Command.ACK_ALARM)
                self.actions["panel_ack_alarm"] += 1
        except PanelUncertain:
            # No reply: taken or not, the next look at the session reads the pump's own
            # state (control channel) and presses again only if the key had no effect.
            self.actions["panel_unanswered"] += 1
            return
        except PanelError:
            return  # nothing was written: tried again at the next look at the session
        time.sleep(0.3)  # let pumpd read the pump again (a few polls)
        self.act("acknowledge", "session.acknowledge", {"note": "cause cleared at the pump"})


_WRONG_WHILE_INFUSING: dict[str, tuple[str, dict[str, Any]]] = {
    "prime_while_infusing": ("session.prime", {"line_disconnected": True}),
    "start_again": ("session.start", {}),
    "resume_not_paused": ("session.resume", {}),
    "discharge_early": ("session.discharge", {"confirmed": []}),
    "acknowledge_no_alarm": ("session.acknowledge", {"alarms": []}),  # "I see none"
    "abort_after_start": ("session.abort", {"reason": "changed my mind"}),
}


def true_infused_ul(sim_status: dict[str, Any]) -> Fraction:
    return Fraction(str(sim_status["true_infused_ul"]))


__all__ = ["ClientError", "Nurse", "SessionRecord"]
