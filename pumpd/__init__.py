"""pumpd: infusion-pump control and tamper-evident audit daemon."""

__version__ = "0.1.0"
