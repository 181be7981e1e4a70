"""The ``disk`` engine: copy a virtual disk over NBD into an NBD export, image file or device."""

from app.engines.disk.engine import DiskEngine

__all__ = ["DiskEngine"]
