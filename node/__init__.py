"""Waymark node: the shared core (settings, chain client, domain model, database, services)."""
