"""The register-map driver's status decoding: a read image of the status blocks → `PumpStatus`.

Part of :class:`~pumpd.drivers.regmap_driver.RegisterMapDriver`, kept apart so each stays
readable: the words decoded in the learned word order, the contract's alarm and warning
flags from the map's bits (a set bit no name covers is UNKNOWN), the volume and rates in
the contract's units, and the state from the running bit and the driver's own memory (a
confirmed PAUSE, the switch-on counter last seen). The driver owns that
memory; decoding a reading updates it, as the driver's docstring says.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from pumpd.drivers.base import (
    RATE_STEP_ML_H,
    AlarmFlag,
    CommandResult,
    ProtocolError,
    PumpProgram,
    PumpState,
    PumpStatus,
    WarningFlag,
)
from pumpd.drivers.regmap import (
    FLOW_TO_ML_H,
    VOLUME_TO_UL,
    FlagSpec,
    Register,
    RegisterMap,
    WordOrder,
    decode,
)


class RegisterStatusDecoder:
    """Decoding of the status image; the attributes are the driver's (set in its
    ``__init__``), declared here for the type checker."""

    rmap: RegisterMap
    _label: str
    _order: WordOrder | None
    _program: PumpProgram | None
    _paused: bool
    _last_state: PumpState | None
    _switch_on: int | None
    _alarm_bits: dict[str, list[tuple[Register, int]]]
    _warning_bits: dict[str, list[tuple[Register, int]]]

    def _decode(self, reg: Register, words: list[int]) -> int | Decimal:
        if reg.words == 2 and self._order is None:
            raise ProtocolError(f"{self._label}: word order not learned yet (connect first)")
        try:
            return decode(reg, words, self._order or "high_first")
        except ValueError as exc:
            raise ProtocolError(f"{self._label}: {exc}") from None

    def _value(self, image: dict[int, int], name: str) -> int | Decimal:
        reg = self.rmap.registers[name]
        return self._decode(reg, [image[a] for a in range(reg.address, reg.address + reg.words)])

    def _bit(self, image: dict[int, int], ref: str) -> bool:
        reg, bit = self.rmap.bit(ref)
        raw = int(
            self._decode(reg, [image[a] for a in range(reg.address, reg.address + reg.words)])
        )
        return bool(raw >> bit & 1)

    def _flags(
        self, image: dict[int, int], spec: FlagSpec, named: dict[str, list[tuple[Register, int]]]
    ) -> tuple[set[str], bool]:
        """The contract flag names set, and whether a set bit no name covers was seen."""
        found: set[str] = set()
        covered: dict[int, set[int]] = {}
        for flag, bits in named.items():
            for reg, bit in bits:
                covered.setdefault(reg.address, set()).add(bit)
                raw = int(
                    self._decode(
                        reg, [image[a] for a in range(reg.address, reg.address + reg.words)]
                    )
                )
                if raw >> bit & 1:
                    found.add(flag)
        unknown = False
        for name in spec.sources:
            reg = self.rmap.registers[name]
            raw = int(self._value(image, name))
            for bit in range(16 * reg.words):
                if raw >> bit & 1 and bit not in covered.get(reg.address, set()):
                    unknown = True
        if spec.summary is not None and self._bit(image, spec.summary) and not found:
            unknown = True
        return found, unknown

    def _decode_status(self, image: dict[int, int], read_at: float) -> PumpStatus:
        st = self.rmap.status
        running = self._bit(image, st.running)
        rate = self._flow_ml_h(st.rate_actual, image, ROUND_HALF_EVEN)
        max_rate = None if st.max_rate is None else self._flow_ml_h(st.max_rate, image, ROUND_DOWN)
        vreg = self.rmap.registers[st.volume_infused]
        assert vreg.unit is not None
        volume_ul = int(
            (
                Decimal(self._value(image, st.volume_infused))
                * vreg.scale
                * VOLUME_TO_UL[vreg.unit]
            ).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
        )
        count: int | None = None
        if st.restart_counter is not None:
            count = int(self._value(image, st.restart_counter))
            if self._switch_on is not None and count != self._switch_on:
                self._paused = False  # powered up again since the last reading
            self._switch_on = count
        alarm_names, alarm_unknown = self._flags(image, self.rmap.alarms, self._alarm_bits)
        alarms = AlarmFlag.NONE
        for name in alarm_names:
            alarms |= AlarmFlag[name]
        if alarm_unknown:
            alarms |= AlarmFlag.UNKNOWN
        warn_names, warn_unknown = self._flags(image, self.rmap.warnings, self._warning_bits)
        warnings = WarningFlag.NONE
        for name in warn_names:
            warnings |= WarningFlag[name]
        if warn_unknown:
            warnings |= WarningFlag.UNKNOWN
        if alarms:
            state = PumpState.ALARM
        elif running:
            state = PumpState.INFUSING
        elif self._paused:
            state = PumpState.PAUSED
        else:
            state = PumpState.IDLE
        program = self._program
        if state is PumpState.IDLE and program is not None and 0 < program.vtbi_ul <= volume_ul:
            warnings |= WarningFlag.VTBI_COMPLETE
        self._last_state = state
        return PumpStatus(
            state=state,
            alarms=alarms,
            warnings=warnings,
            rate_actual_ml_h=rate if running else Decimal(0),
            volume_infused_ul=volume_ul,
            volume_primed_ul=0,
            pressure_downstream_mmhg=None,
            battery_percent=None,
            last_cmd_seq=0,
            last_cmd_result=CommandResult.OK,
            heartbeat_echo=None,
            max_rate_ml_h=max_rate,
            uptime_s=None,
            serial_number=None,
            profile_version=None,
            read_at_monotonic=read_at,
            switch_on_count=count,
        )

    def _flow_ml_h(self, name: str, image: dict[int, int], rounding: str) -> Decimal:
        reg = self.rmap.registers[name]
        assert reg.unit is not None
        ml_h = Decimal(self._value(image, name)) * reg.scale * FLOW_TO_ML_H[reg.unit]
        return ml_h.quantize(RATE_STEP_ML_H, rounding=rounding)
