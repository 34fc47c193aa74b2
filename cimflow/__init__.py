"""cimflow: a compiler for computing-in-memory accelerators on xDSL."""

__version__ = "0.1.0"
