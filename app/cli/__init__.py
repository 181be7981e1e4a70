"""The ``ferry`` command."""
