"""The central store of a chain of clinics: its schema, the forwarder that ships a site's
events there, the sink for published chain heads, and the centre's own checks
(docs/central.md)."""
