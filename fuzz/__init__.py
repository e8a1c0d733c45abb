"""Fuzzing targets for roost's untrusted-input paths (atheris; hypothesis in ``make test``)."""
