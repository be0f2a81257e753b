"""tickrail services."""
