"""Pump drivers: one typed interface, one Modbus implementation behind it."""
