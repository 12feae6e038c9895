"""``make bench`` (``benchmarks.__main__``) and ``make load`` (``benchmarks.load``)."""
