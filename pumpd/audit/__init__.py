"""The append-only, hash-chained audit store and its reading side.

Everything that records or reads the audit log comes through this face: the store and
its async writer (``AuditStore``, ``AsyncAuditWriter``, ``NewEvent``), the chain and its
key, the spool that keeps events while the database is away, the published heads,
verification and the readers. Three modules are public as namespaces, as structlog's
``processors`` is: ``catalogue`` (the event payload models, docs/audit-events.md),
``schema`` (the tables, for Alembic and the tables beside them) and ``migrate`` (the
schema's upgrade runner). Every other module here is private: tests/audit/ may import
it, nothing else (tests/test_package_faces.py holds the rule; docs/architecture.md,
"Package faces").

The audit package sits below everything that records, so this face imports only the
audit's own modules and ``pumpd.db``/``pumpd.shipped``.
"""

from pumpd.audit import catalogue, migrate, schema
from pumpd.audit.actor import DAEMON_NAME, STAFF_PREFIX, Actor, InvalidActor, is_reserved
from pumpd.audit.chain import COLUMNS, GENESIS_HASH, EventRecord, Hasher, encode_row, load_key
from pumpd.audit.checkpoint import parse_checkpoint
from pumpd.audit.errors import (
    AuditError,
    AuditWriteFailed,
    EventRefused,
    KeyFileError,
    SchemaError,
    StoreClosed,
)
from pumpd.audit.heads import HeadPublisher, HeadSink, LogHeadSink, read_heads
from pumpd.audit.keys import ChainKey, generate_key_file
from pumpd.audit.queries import (
    CourseEntry,
    EventFilter,
    QueryInputError,
    SessionSummary,
    build_report,
    iter_events,
    iter_sessions,
    newest_event,
    parse_time,
    patient_course,
    session_timeline,
)
from pumpd.audit.spool import Spool, SpoolCorrupt, SpoolError, SpoolMismatch
from pumpd.audit.store import AuditStore, NewEvent, prepare, utc_text
from pumpd.audit.verify import verify
from pumpd.audit.vocabulary import TEXT_MAX_CHARS
from pumpd.audit.writer import AsyncAuditWriter, Receipt

__all__ = [
    "COLUMNS",
    "DAEMON_NAME",
    "GENESIS_HASH",
    "STAFF_PREFIX",
    "TEXT_MAX_CHARS",
    "Actor",
    "AsyncAuditWriter",
    "AuditError",
    "AuditStore",
    "AuditWriteFailed",
    "ChainKey",
    "CourseEntry",
    "EventFilter",
    "EventRecord",
    "EventRefused",
    "Hasher",
    "HeadPublisher",
    "HeadSink",
    "InvalidActor",
    "KeyFileError",
    "LogHeadSink",
    "NewEvent",
    "QueryInputError",
    "Receipt",
    "SchemaError",
    "SessionSummary",
    "Spool",
    "SpoolCorrupt",
    "SpoolError",
    "SpoolMismatch",
    "StoreClosed",
    "build_report",
    "catalogue",
    "encode_row",
    "generate_key_file",
    "is_reserved",
    "iter_events",
    "iter_sessions",
    "load_key",
    "migrate",
    "newest_event",
    "parse_checkpoint",
    "parse_time",
    "patient_course",
    "prepare",
    "read_heads",
    "schema",
    "session_timeline",
    "utc_text",
    "verify",
]
