"""Service functions: each owns its one transaction. Routes call exactly one of them."""
