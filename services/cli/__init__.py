"""The tickrail command line."""
