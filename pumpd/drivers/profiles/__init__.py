"""Register-map profiles shipped with pumpd (TOML data)."""
