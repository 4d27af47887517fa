"""One DULCO flex Control DFXa metering pump: its registers and behaviour, pure and clock-free.

Two clocks are handed in, as for the New Era pumps: delivery runs on the simulator's
scaled seconds (`advance_to`), the Modbus timeout on wall seconds (`comm_tick`,
`request`), because the pump's watchdog counts real milliseconds whatever the time scale.

What the manual says the pump does, the model does, including what pumpd has to guard
against: on a Modbus timeout the pump stops with an error and **starts again by itself**
when requests resume (if start/stop still says run); after a power loss it comes up
according to its power-up behaviour (0 off, 1 on, 2 last state); an error reset with
start/stop still at run lets it run again.
"""

from __future__ import annotations

import struct
from decimal import Decimal
from fractions import Fraction

from pumpsim import dulco_map as m
from pumpsim.errors import ModelInputError

WordOrder = str  # "high_first" | "low_first" | "byte_swapped" (a pattern pumpd must refuse)
SECONDS_PER_HOUR = 3600


def f32_bits(value: Fraction | Decimal | float) -> int:
    return int.from_bytes(struct.pack(">f", float(value)), "big")


def f32_value(bits: int) -> Fraction:
    (number,) = struct.unpack(">f", bits.to_bytes(4, "big"))
    return Fraction(number)


class DulcoModel:
    """The pump at one unit id. Only register writes, the clocks and the fault setters change it."""

    def __init__(
        self,
        *,
        unit: int = m.DEFAULT_UNIT,
        max_capacity_l_h: Decimal = Decimal("1.2"),
        modbus_timeout_ms: int = 1000,
        power_up: int = m.PowerUp.LAST_STATE,
        word_order: WordOrder = "high_first",
    ) -> None:
        self.unit = unit
        self.max_capacity_bits = f32_bits(max_capacity_l_h)
        self.modbus_timeout_ms = modbus_timeout_ms
        self.power_up = power_up
        self.word_order = word_order
        self.now_s = Fraction(0)
        self.run = False  # start/stop bit 0, as last written
        self.stopped_by_timeout = False  # start/stop bit 1
        self.timed_out = False  # stopped by the watchdog, not yet resumed
        self.mode = int(m.Mode.EXTERNAL_STOP)
        self.target_bits = 0  # float32 l/h, as written
        self.conditions = 0  # error causes present now
        self.errors = 0  # latched error flags
        self.warnings = 0
        self.deletable_l = Fraction(0)
        self.total_l = Fraction(0)
        self.switch_on_count = 1
        self.last_request_wall_s: float | None = None
        self.powered = True
        self.restarts_by_itself = 0
        """How often the pump started delivery without a start written (timeout resume,
        power-up, error reset): the number pumpd must keep at zero."""

    # ------------------------------------------------------------------ readings

    @property
    def target_l_h(self) -> Fraction:
        return f32_value(self.target_bits)

    @property
    def max_capacity_l_h(self) -> Fraction:
        return f32_value(self.max_capacity_bits)

    @property
    def motor_running(self) -> bool:
        return (
            self.powered
            and self.run
            and not self.timed_out
            and self.errors == 0
            and self.mode == m.Mode.MANUAL
            and self.target_bits != 0
        )

    def status_word(self) -> int:
        word = 1 << m.StatusBit.FIELDBUS
        word |= int(m.Mode.MANUAL if self.mode == m.Mode.MANUAL else 0) << 2
        if self.motor_running:
            word |= 1 << m.StatusBit.MOTOR_RUNNING
        else:
            word |= 1 << m.StatusBit.STOPPED
        if self.errors == 0:
            word |= 1 << m.StatusBit.READY
        if self.errors or self.timed_out:
            word |= 1 << m.StatusBit.ERROR
        if self.warnings:
            word |= 1 << m.StatusBit.WARNING
        return word

    def start_stop_word(self) -> int:
        return int(self.run) | int(self.stopped_by_timeout) << m.StartStopBit.STOPPED_BY_TIMEOUT

    def value(self, reg: m.Reg) -> int | Fraction:
        """A register's value: an int, or the exact value a float32 register holds."""
        values: dict[int, int | Fraction] = {
            m.MODULE_ACTIVE.address: 1,
            m.BAUD_CODE.address: 1,
            m.ADDRESS.address: self.unit,
            m.PARITY_CODE.address: 2,
            m.STOP_BITS.address: 1,
            m.DATA_BITS.address: 8,
            m.TERMINATION.address: 0,
            m.MODBUS_TIMEOUT_MS.address: self.modbus_timeout_ms,
            m.ENDIANNESS.address: m.ENDIANNESS_PATTERN,
            m.STATUS.address: self.status_word(),
            m.ERRORS.address: self.errors,
            m.ERRORS_2.address: 0,
            m.WARNINGS.address: self.warnings,
            m.CAPACITY_ACTUAL_L_H.address: self.target_l_h if self.motor_running else Fraction(0),
            m.CAPACITY_MAX_L_H.address: self.max_capacity_l_h,
            m.MODE_ACTUAL.address: self.mode,
            m.SWITCH_ON_COUNT.address: self.switch_on_count,
            m.VOLUME_TOTAL_L.address: self.total_l,
            m.VOLUME_DELETABLE_L.address: self.deletable_l,
            m.START_STOP.address: self.start_stop_word(),
            m.CAPACITY_TARGET_L_H.address: self.target_l_h,
            m.MODE.address: self.mode,
            m.ERROR_RESET.address: 0,
            m.POWER_UP.address: self.power_up,
        }
        return values[reg.address]

    def words(self, reg: m.Reg) -> list[int]:
        value = self.value(reg)
        if reg.kind == "u16":
            return [int(value) & 0xFFFF]
        raw = f32_bits(value) if reg.kind == "f32" else int(value) & 0xFFFF_FFFF
        hi, lo = raw >> 16, raw & 0xFFFF
        if self.word_order == "low_first":
            return [lo, hi]
        if self.word_order == "byte_swapped":
            return [_swap(hi), _swap(lo)]
        return [hi, lo]

    def image(self, first: int, count: int) -> list[int]:
        """Registers first..first+count-1 (gaps read 0)."""
        out = [0] * count
        for reg in m.ALL:
            for i, word in enumerate(self.words(reg)):
                offset = reg.address + i - first
                if 0 <= offset < count:
                    out[offset] = word
        return out

    def snapshot(self) -> dict[str, object]:
        return {
            "unit": self.unit,
            "powered": self.powered,
            "motor_running": self.motor_running,
            "run": self.run,
            "timed_out": self.timed_out,
            "stopped_by_timeout": self.stopped_by_timeout,
            "mode": self.mode,
            "target_l_h": str(Decimal(float(self.target_l_h))),
            "errors": self.errors,
            "conditions": self.conditions,
            "deletable_ul": float(self.deletable_l * 1_000_000),
            "total_ul": float(self.total_l * 1_000_000),
            "switch_on_count": self.switch_on_count,
            "power_up": self.power_up,
            "modbus_timeout_ms": self.modbus_timeout_ms,
            "word_order": self.word_order,
            "restarts_by_itself": self.restarts_by_itself,
            "sim_time_s": float(self.now_s),
        }

    # ------------------------------------------------------------------ time

    def advance_to(self, t_s: Fraction) -> None:
        """Deliver at the target capacity from now_s to t_s (scaled seconds)."""
        if t_s < self.now_s:
            raise ModelInputError(f"time went back: {float(t_s)} < {float(self.now_s)}")
        if self.motor_running:
            litres = self.target_l_h * (t_s - self.now_s) / SECONDS_PER_HOUR
            self.deletable_l += litres
            self.total_l += litres
        self.now_s = t_s

    def comm_tick(self, wall_s: float) -> None:
        """The Modbus timeout: no request for longer than register 61 stops the pump."""
        if (
            not self.powered
            or self.modbus_timeout_ms == 0
            or self.last_request_wall_s is None
            or self.timed_out
        ):
            return
        if (wall_s - self.last_request_wall_s) * 1000 > self.modbus_timeout_ms:
            self.timed_out = self.run
            self.stopped_by_timeout = self.stopped_by_timeout or self.run

    def request(self, wall_s: float) -> None:
        """A valid frame for this pump arrived (after any write it carried was applied).

        A pump stopped by its timeout resumes now, by itself, if start/stop still says run.
        """
        self.comm_tick(wall_s)
        self.last_request_wall_s = wall_s
        if self.timed_out:
            self.timed_out = False
            if self.motor_running:
                self.restarts_by_itself += 1

    # ------------------------------------------------------------------ writes

    def check_write(self, address: int, values: list[int]) -> str | None:
        """Why this write is refused ("address" or "value"), or None; nothing changes."""
        regs = self._regs_of(address, values)
        if regs is None:
            return "address"
        for reg, words in regs:
            if reg.kind == "f32":
                value = f32_value(self._join(words))
                if value < 0:
                    return "value"
                if reg is m.CAPACITY_TARGET_L_H and value > self.max_capacity_l_h:
                    return "value"
            elif (
                (reg is m.START_STOP and words[0] & ~1)
                or (reg is m.MODE and words[0] not in (m.Mode.EXTERNAL_STOP, m.Mode.MANUAL))
                or (reg is m.POWER_UP and words[0] not in tuple(m.PowerUp))
            ):
                return "value"
        return None

    def write(self, address: int, values: list[int]) -> None:
        """Apply a write `check_write` accepted."""
        regs = self._regs_of(address, values)
        assert regs is not None
        for reg, words in regs:
            if reg is m.START_STOP:
                self.run = bool(words[0] & 1)
            elif reg is m.CAPACITY_TARGET_L_H:
                self.target_bits = self._join(words)
            elif reg is m.MODE:
                self.mode = words[0]
            elif reg is m.POWER_UP:
                self.power_up = words[0]
            elif reg is m.VOLUME_DELETABLE_L:
                self.deletable_l = Fraction(0)
            elif reg is m.ERROR_RESET and words[0] == m.ERROR_RESET_MAGIC:
                was_running = self.motor_running
                self.errors = self.conditions
                self.stopped_by_timeout = False
                self.timed_out = False
                if self.motor_running and not was_running:
                    self.restarts_by_itself += 1

    def _join(self, words: list[int]) -> int:
        if self.word_order == "low_first":
            return words[1] << 16 | words[0]
        if self.word_order == "byte_swapped":
            return _swap(words[0]) << 16 | _swap(words[1])
        return words[0] << 16 | words[1]

    @staticmethod
    def _regs_of(address: int, values: list[int]) -> list[tuple[m.Reg, list[int]]] | None:
        """The writable registers a write covers exactly, each with its words, or None
        (a write that covers part of a register or any read-only one)."""
        out: list[tuple[m.Reg, list[int]]] = []
        at = address
        end = address + len(values)
        while at < end:
            reg = m.BY_ADDRESS.get(at)
            if reg is None or not reg.writable or at + reg.words > end:
                return None
            out.append((reg, values[at - address : at - address + reg.words]))
            at += reg.words
        return out

    # ------------------------------------------------------------------ faults

    def set_error(self, bit: int, on: bool) -> None:
        """An error cause appears (latched at once; the pump stops) or goes away."""
        if not 0 <= bit <= 31:
            raise ModelInputError(f"error bit {bit} is not in 0..31")
        if on:
            self.conditions |= 1 << bit
            self.errors |= 1 << bit
        else:
            self.conditions &= ~(1 << bit)

    def panel_reset(self) -> None:
        """The error reset at the pump's own panel (a nurse's key, never pumpd's): the same
        as the Modbus error reset; errors whose cause is gone clear, the timeout flag too."""
        self.write(m.ERROR_RESET.address, [m.ERROR_RESET_MAGIC])

    def power_loss(self) -> None:
        """Power off and on: the pump comes up as its power-up behaviour says."""
        was_run = self.run
        self.switch_on_count += 1
        self.timed_out = False
        self.stopped_by_timeout = False
        self.errors = self.conditions
        self.last_request_wall_s = None  # the watchdog starts with the first request
        if self.power_up == m.PowerUp.ALWAYS_OFF:
            self.run = False
        elif self.power_up == m.PowerUp.ALWAYS_ON:
            self.run = True
        else:
            self.run = was_run
        if self.motor_running:
            self.restarts_by_itself += 1


def _swap(word: int) -> int:
    return (word & 0xFF) << 8 | word >> 8
