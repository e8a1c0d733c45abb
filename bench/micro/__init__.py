"""Micro-benchmarks of the hot path (DESIGN.md §3): one module per measured layer."""
