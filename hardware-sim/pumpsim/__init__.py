"""pumpsim: a GIP-MB1 infusion-pump simulator speaking real Modbus (TCP and RTU)."""
