"""What a soak run leaves behind, as plain data: the checker's only input.

* the audit database, read with SQL (every column the checks need, payloads parsed);
* ``pumpaudit verify``'s exit status and output;
* the simulator's own command log (``t_monotonic`` of each command the pump took);
* the sampler's timeline: each pump's state and true infused volume from the simulator,
  beside the daemon's view of its session, stamped with ``time.monotonic()``;
* the offset between this host's UTC and monotonic clocks, sampled all along, so an
  audit event's UTC stamp can be placed on the simulator's monotonic time line;
* the daemon's lives (ready, ended, how), the keys pressed at the pumps, what each nurse
  saw (wrong actions accepted, bad input that changed something);
* every fault the soak injected: which, on which pump, with which parameters, when it was
  turned on and off (UTC and monotonic) and in which daemon life, so a violation can name
  the faults on its pump just before it (:meth:`Evidence.faults_before`).

Everything here can be written to and read from JSON (``--keep``), so a failed run can
be checked again, and the checker's tests build it from small hand-made databases.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

FAULT_WINDOW_S = 30.0
"""A violation names the faults on its pump that were on at any time in this many real
seconds before it (docs/soak.md)."""
UTC_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""The audit's stamps, the simulator's journal and the injections: ISO 8601, UTC."""

# The audit event types whose payloads the checks read (the rest are only counted).
PAYLOAD_TYPES = frozenset(
    {
        "pump.command.requested",
        "pump.command.confirmed",
        "pump.command.uncertain",
        "pump.command.failed",
        "session.programmed",
        "session.adjusted",
        "session.checkpointed",
        "daemon.recovered",
        "alarm.raised",
    }
)


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    occurred_at: str
    instance_id: str
    event_type: str
    pump_id: str | None
    session_id: str | None
    correlation_id: str | None
    actor_kind: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class SimCommand:
    unit: int
    cmd_seq: int
    command: int
    result: int | str
    t_mono: float


@dataclass(frozen=True)
class Sample:
    t_mono: float
    unit: int
    pump_state: str
    true_infused_ul: float
    daemon_answered: bool
    session_id: str | None = None
    session_state: str | None = None
    alarm_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Life:
    generation: int
    ready_mono: float
    ended_mono: float | None
    ended_by: str | None


@dataclass(frozen=True)
class PanelPress:
    unit: int
    cmd_seq: int
    t_mono: float
    answered: bool = True
    """False: written, no reply (the pump may not have taken it)."""


@dataclass(frozen=True)
class FaultInjection:
    """One fault the soak injected at a pump (the simulator's control channel), on to off."""

    pump_id: str
    pump_kind: str
    """``tcp``, ``rtu``, ``newera`` or ``dulco`` (soak/kinds.py)."""
    unit: int
    """The pump's key in the soak (GIP-MB1 unit; New Era and DULCO keys: soak/kinds.py)."""
    fault: str
    params: dict[str, Any]
    """As told to the simulator (``factor``, ``ms``, ``count``, ``probability``...)."""
    on_mono: float
    """The soak's ``time.monotonic()`` as it told the simulator (the same clock as the
    samples, the lives and the simulator's logs)."""
    on_utc: str
    on_life: int | None
    """The daemon life (``Life.generation``) up then; None: no daemon was up (between a
    signal and the next one's ready)."""
    off_mono: float | None = None
    """None: never turned off (a reboot or power loss is one act; or left on at the end)."""
    off_utc: str | None = None
    off_life: int | None = None

    def overlaps(self, begin_mono: float, end_mono: float) -> bool:
        """On at any time within [begin_mono, end_mono]."""
        off = self.on_mono if self.off_mono is None else self.off_mono
        return self.on_mono <= end_mono and off >= begin_mono


@dataclass
class Evidence:
    scale: float
    heartbeat_timeout_s: float
    units: dict[str, int]
    """pump_id → simulator unit."""
    events: list[AuditEvent] = field(default_factory=list)
    verify_exit: int = 0
    verify_output: str = ""
    sim_commands: list[SimCommand] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    offsets: list[tuple[float, float]] = field(default_factory=list)
    """(monotonic, UTC epoch − monotonic) pairs, in monotonic order."""
    lives: list[Life] = field(default_factory=list)
    presses: list[PanelPress] = field(default_factory=list)
    nurse_findings: list[tuple[str, str, str]] = field(default_factory=list)
    """(kind, pump_id, detail) the nurses saw: a wrong action accepted, a bad input that
    changed the session, a session the nurse could not bring to an end."""
    forwarded: list[tuple[int, str, str]] | None = None
    """With ``--forward``: the centre's copy of the site's chain (seq, prev, hash)."""
    site_chain: list[tuple[int, str, str]] = field(default_factory=list)
    central_conflicts: list[tuple[str, int, str]] = field(default_factory=list)
    prime_in_counter_ul: dict[str, int] = field(default_factory=dict)
    """pump_id → the prime its simulator counts as infused (New Era: one counter)."""
    injections: list[FaultInjection] = field(default_factory=list)
    """Every fault the soak injected, in the order it was turned on."""
    injections_kept: bool = True
    """False: evidence from before the injections were kept (nothing known of them)."""
    _walls: list[float] = field(default_factory=list, repr=False)

    # ------------------------------------------------------------------ time

    def mono_of_utc(self, occurred_at: str) -> float:
        """An audit UTC stamp on this host's monotonic time line (nearest offset sample)."""
        wall = datetime.strptime(occurred_at, UTC_FORMAT).replace(tzinfo=UTC)
        epoch = wall.timestamp()
        if not self.offsets:
            raise ValueError("no clock offsets were sampled")
        if len(self._walls) != len(self.offsets):
            self._walls = [m + off for m, off in self.offsets]
        walls = self._walls
        i = bisect.bisect_left(walls, epoch)
        candidates = [j for j in (i - 1, i) if 0 <= j < len(walls)]
        j = min(candidates, key=lambda k: abs(walls[k] - epoch))
        return epoch - self.offsets[j][1]

    # ------------------------------------------------------------------ faults

    def faults_before(
        self, pump_id: str | None, t_mono: float | None, window_s: float = FAULT_WINDOW_S
    ) -> tuple[FaultInjection, ...]:
        """The faults injected at ``pump_id`` that were on at any time in the ``window_s``
        before ``t_mono`` (none without a pump or a time)."""
        if pump_id is None or t_mono is None:
            return ()
        return tuple(
            i
            for i in self.injections
            if i.pump_id == pump_id and i.overlaps(t_mono - window_s, t_mono)
        )

    # ------------------------------------------------------------------ files

    def dump(self, path: Path) -> None:
        raw = asdict(self)
        raw.pop("_walls")
        path.write_text(json.dumps(raw), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Evidence:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            scale=raw["scale"],
            heartbeat_timeout_s=raw["heartbeat_timeout_s"],
            units=raw["units"],
            events=[AuditEvent(**e) for e in raw["events"]],
            verify_exit=raw["verify_exit"],
            verify_output=raw["verify_output"],
            sim_commands=[SimCommand(**c) for c in raw["sim_commands"]],
            samples=[
                Sample(**{**s, "alarm_codes": tuple(s["alarm_codes"])}) for s in raw["samples"]
            ],
            offsets=[(a, b) for a, b in raw["offsets"]],
            lives=[Life(**life) for life in raw["lives"]],
            presses=[PanelPress(**p) for p in raw["presses"]],
            nurse_findings=[(a, b, c) for a, b, c in raw["nurse_findings"]],
            forwarded=None
            if raw.get("forwarded") is None
            else [(a, b, c) for a, b, c in raw["forwarded"]],
            site_chain=[(a, b, c) for a, b, c in raw.get("site_chain", [])],
            central_conflicts=[(a, b, c) for a, b, c in raw.get("central_conflicts", [])],
            prime_in_counter_ul=dict(raw.get("prime_in_counter_ul", {})),
            injections=[FaultInjection(**i) for i in raw.get("injections", [])],
            injections_kept="injections" in raw,
        )


def read_audit(database_url: str) -> list[AuditEvent]:
    """Every event of the audit database, in seq order (payloads of PAYLOAD_TYPES parsed)."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT seq, occurred_at, instance_id, event_type, pump_id, session_id, "
                    "correlation_id, actor_kind, payload FROM audit_event ORDER BY seq"
                )
            )
            return [
                AuditEvent(
                    seq=int(r.seq),
                    occurred_at=str(r.occurred_at),
                    instance_id=str(r.instance_id),
                    event_type=str(r.event_type),
                    pump_id=r.pump_id,
                    session_id=r.session_id,
                    correlation_id=r.correlation_id,
                    actor_kind=str(r.actor_kind),
                    payload=json.loads(r.payload) if r.event_type in PAYLOAD_TYPES else {},
                )
                for r in rows
            ]
    finally:
        engine.dispose()


def sim_commands_of(records: list[dict[str, Any]]) -> list[SimCommand]:
    """The simulator's command-log records (`pumpsim log`) as :class:`SimCommand`."""
    return [
        SimCommand(
            unit=int(r["unit"]),
            cmd_seq=int(r["cmd_seq"]),
            command=int(r["command"]),
            result=r["result"],
            t_mono=float(r["t_monotonic"]),
        )
        for r in records
    ]
