"""bus adapters."""
