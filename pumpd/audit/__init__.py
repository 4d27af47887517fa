"""The append-only, hash-chained audit store and its reading side."""
