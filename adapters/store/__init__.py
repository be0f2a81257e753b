"""store adapters."""
