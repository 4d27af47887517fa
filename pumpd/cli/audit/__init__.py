"""The commands of ``pumpaudit`` (``pumpd.cli.pumpaudit``), one family per module."""
