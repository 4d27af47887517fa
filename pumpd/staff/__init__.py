"""The staff registry: who may act at a shared nurse-station account, with a PIN hash.

A mutable table beside the append-only audit log (``pumpd.audit``): the registry is state,
every change to it is written to the log as a ``staff.*`` event, so the log stays the record.
"""

from pumpd.staff.registry import (
    PinRefused,
    StaffError,
    StaffExists,
    StaffInputError,
    StaffLocked,
    StaffMember,
    StaffRegistry,
    UnknownStaff,
    check_pin,
    check_staff_id,
)
from pumpd.staff.schema import staff_member

__all__ = [
    "PinRefused",
    "StaffError",
    "StaffExists",
    "StaffInputError",
    "StaffLocked",
    "StaffMember",
    "StaffRegistry",
    "UnknownStaff",
    "check_pin",
    "check_staff_id",
    "staff_member",
]
