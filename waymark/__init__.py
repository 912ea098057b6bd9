"""The `waymark` command line: one entry point, a subcommand per area."""
