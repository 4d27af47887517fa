-- PostgreSQL roles for the pumpd audit log. Run as a superuser, once per database, AFTER
-- `pumpd db upgrade` has created the schema as the owner role:
--
--   psql -v ON_ERROR_STOP=1 -v owner_role=pumpd_owner -v writer_role=pumpd_writer \
--        -v auditor_role=pumpd_auditor -d pumpd -f migrations/sql/postgres-roles.sql
--
-- owner_role   owns the tables (it ran the migrations); used only for `pumpd db upgrade`.
-- writer_role  the daemon: SELECT and INSERT on audit_event; SELECT on the audit_* views
--              (recovery, the course rules and the daemon's own reads go through them, as
--              pumpaudit's do); SELECT, INSERT, UPDATE on staff_member; nothing else.
-- auditor_role people and BI tools: SELECT on the audit_* views only.
-- UPDATE, DELETE and TRUNCATE are granted to nobody; the triggers from migration
-- 0001_audit_event refuse them even for the owner. Passwords are set separately
-- (`\password pumpd_writer`) or replaced by peer/cert authentication in pg_hba.conf.
-- Safe to run again: roles are created only when missing and grants are idempotent.

SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', :'writer_role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'writer_role') \gexec
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', :'auditor_role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'auditor_role') \gexec

BEGIN;

ALTER TABLE audit_event OWNER TO :"owner_role";
ALTER TABLE alembic_version OWNER TO :"owner_role";
ALTER TABLE staff_member OWNER TO :"owner_role";
ALTER VIEW audit_events OWNER TO :"owner_role";
ALTER VIEW audit_sessions OWNER TO :"owner_role";
ALTER VIEW audit_alarms OWNER TO :"owner_role";
ALTER VIEW audit_overrides OWNER TO :"owner_role";
ALTER VIEW audit_commands OWNER TO :"owner_role";

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"writer_role", :"auditor_role";

REVOKE ALL ON audit_event, alembic_version FROM PUBLIC;
REVOKE ALL ON audit_events, audit_sessions, audit_alarms, audit_overrides, audit_commands
  FROM PUBLIC;

REVOKE ALL ON audit_event FROM :"writer_role", :"auditor_role";
GRANT SELECT, INSERT ON audit_event TO :"writer_role";
REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_event FROM :"writer_role";

-- The staff registry (0003_staff_registry, pumpd/staff) is state, not record: the daemon
-- reads, adds and updates entries (PIN hash, lock); nobody deletes one (disable it
-- instead). Auditors see no hashes.
REVOKE ALL ON staff_member FROM PUBLIC;
REVOKE ALL ON staff_member FROM :"writer_role", :"auditor_role";
GRANT SELECT, INSERT, UPDATE ON staff_member TO :"writer_role";

-- Both need to read the schema revision: pumpd refuses a database it does not know.
GRANT SELECT ON alembic_version TO :"writer_role", :"auditor_role";

GRANT SELECT ON audit_events, audit_sessions, audit_alarms, audit_overrides, audit_commands
  TO :"auditor_role";

-- The daemon reads its own log through the same views (recovery of each pump's session at
-- start-up, the course rules, checkpoints). The writer can read audit_event already, so
-- this widens nothing; without it, pumpd as the writer role supervises no pump.
GRANT SELECT ON audit_events, audit_sessions, audit_alarms, audit_overrides, audit_commands
  TO :"writer_role";

COMMIT;
