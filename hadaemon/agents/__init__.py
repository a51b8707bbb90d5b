"""Resource agents importable as libraries (the LRM can run them in-process)."""
