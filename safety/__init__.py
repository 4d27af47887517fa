"""The interlock kernel: pure, typed decisions that can hurt a patient if wrong.

No I/O, no clock reads, no imports from ``pumpd``. Time and state come in as arguments;
verdicts and actions go out. The controller obeys.
"""
