"""Sculptor: carve generated sculpture in wood with a robot."""
__version__ = "0.1.0"
