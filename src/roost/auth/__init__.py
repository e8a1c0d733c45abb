"""Authentication: stored SCRAM credentials and the providers that look them up."""
