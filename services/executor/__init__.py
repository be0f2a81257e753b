"""Task and Plan executors."""
