"""`waymark demo`: the whole network on one machine, and the story it plays (also used by tests/e2e)."""
