"""Thin Spark wrappers: sessions, atomic table I/O and the stage runners.

Everything here needs the `spark` extra; the pure pandas stages do not.
"""
