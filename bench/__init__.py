"""Benchmarks for roost: ``python -m bench.micro`` runs the micro-benchmarks."""
