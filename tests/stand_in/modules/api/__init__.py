"""``modules.api`` (tests only)."""
