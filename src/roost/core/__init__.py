"""The core: router, sessions, hosts, hooks and the module API."""
