"""``make bench``: measure chatflow against the libraries it is built on, side by side.

Run with ``python -m benchmarks``.  It generates its own data in a temp dir, starts a real
server on a free loopback port, runs every measurement at least three times, prints a table
(median, min, max), writes every figure to ``benchmarks/results/latest.json`` and rewrites
``docs/benchmarks.md`` and ``docs/benchmarks_ratios.png``.  Not part of ``make test``.
"""
