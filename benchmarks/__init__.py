"""Benchmarks for tarexport: copy speed and flat memory, beside ``docker save`` and ``cp``.

Run ``python -m benchmarks.save --help``. Every measured operation runs in its own child
process, so its peak RSS and the temporary files it leaves are its own; the driver itself
imports nothing from tarexport.
"""
