"""The global scan pool: its threads, the runs they serve, and the coordinator that admits them."""
