"""One contract suite per adapter kind, run against every implementation."""
