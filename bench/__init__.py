"""Benchmarks and load generators (see README, Benchmarks)."""
