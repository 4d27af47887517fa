"""The soak with chaos: many complete sessions on the real processes, with
wrong nurse actions, pump and wire faults and daemon kills, then the invariants checked
from the evidence the run leaves behind (docs/soak.md)."""
