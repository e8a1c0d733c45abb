"""Browser tests: real web clients against a real roost."""
