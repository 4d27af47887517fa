"""Pictures and records made from the audit log: the session report (PDF or PNG pages),
the patient's course, and the FHIR R4 administration record for the clinic's EHR.

Everything here reads the audit store's read API only (``pumpd.audit.queries``): what a
report shows is what the log holds, gathered into typed records first (``record`` into
``model``), then drawn (``plots``, ``document``) or mapped (``fhir``).
"""
