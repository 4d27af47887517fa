"""The ``pumpd`` service: configuration to running supervision, systemd and logs.

``app`` (the Daemon and its start-up order), ``notify`` (sd_notify), ``watchdog`` (pings
earned by fresh poll loops), ``logs`` (structlog for journald and terminals), ``control``
(the seam to the control socket). docs/daemon.md describes it for administrators.
"""
