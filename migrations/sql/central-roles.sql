-- PostgreSQL roles for a pumpd central store. Run as a superuser, once per database, AFTER
-- `pumpd central upgrade` has created the schema as the owner role:
--
--   psql -v ON_ERROR_STOP=1 -v owner_role=pumpd_central_owner \
--        -v forwarder_role=pumpd_forward -v auditor_role=pumpd_central_auditor \
--        -d pumpd_central -f migrations/sql/central-roles.sql
--
-- owner_role      owns the objects (it ran the migrations); used only for `pumpd central
--                 upgrade`. Still stopped by the append-only triggers.
-- forwarder_role  every site's forwarder: INSERT on central_event and central_head; SELECT
--                 of (site, seq, event_hash) only — the held hash of a number it sent,
--                 never another site's payloads; EXECUTE of central_claim_site (register
--                 its site id, once, with its log's first event). Nothing else.
-- auditor_role    people and BI tools: SELECT on the audit_* views (with a site column),
--                 on the sites registry, the published heads and the recorded conflicts.
-- UPDATE, DELETE and TRUNCATE are granted to nobody; the triggers of c0001_central_store
-- refuse them even for the owner. Passwords or certificates are set separately; require TLS
-- for the forwarder in pg_hba.conf (hostssl ... cert or scram-sha-256).
-- Safe to run again: roles are created only when missing and grants are idempotent.

SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', :'forwarder_role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'forwarder_role') \gexec
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', :'auditor_role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'auditor_role') \gexec

BEGIN;

ALTER TABLE central_site OWNER TO :"owner_role";
ALTER TABLE central_event OWNER TO :"owner_role";
ALTER TABLE central_head OWNER TO :"owner_role";
ALTER TABLE central_conflict OWNER TO :"owner_role";
ALTER TABLE alembic_version OWNER TO :"owner_role";
ALTER VIEW central_scoped_event OWNER TO :"owner_role";
ALTER VIEW audit_events OWNER TO :"owner_role";
ALTER VIEW audit_sessions OWNER TO :"owner_role";
ALTER VIEW audit_alarms OWNER TO :"owner_role";
ALTER VIEW audit_overrides OWNER TO :"owner_role";
ALTER VIEW audit_commands OWNER TO :"owner_role";
ALTER FUNCTION central_event_arrive() OWNER TO :"owner_role";
ALTER FUNCTION central_claim_site(text, text, text) OWNER TO :"owner_role";
ALTER FUNCTION central_refuse_change() OWNER TO :"owner_role";

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"forwarder_role", :"auditor_role";

REVOKE ALL ON central_site, central_event, central_head, central_conflict, alembic_version
  FROM PUBLIC, :"forwarder_role", :"auditor_role";
REVOKE ALL ON central_scoped_event, audit_events, audit_sessions, audit_alarms,
  audit_overrides, audit_commands FROM PUBLIC, :"forwarder_role", :"auditor_role";
REVOKE ALL ON FUNCTION central_claim_site(text, text, text) FROM PUBLIC;

GRANT INSERT ON central_event TO :"forwarder_role";
GRANT SELECT (site, seq, event_hash) ON central_event TO :"forwarder_role";
GRANT INSERT (site, seq, event_hash, ts, key_id, mac) ON central_head TO :"forwarder_role";
GRANT EXECUTE ON FUNCTION central_claim_site(text, text, text) TO :"forwarder_role";

-- Both read the schema revision: pumpd refuses a centre it does not know.
GRANT SELECT ON alembic_version TO :"forwarder_role", :"auditor_role";

GRANT SELECT ON audit_events, audit_sessions, audit_alarms, audit_overrides, audit_commands,
  central_site, central_head, central_conflict TO :"auditor_role";

COMMIT;
