"""Command-line tools (hactl)."""
