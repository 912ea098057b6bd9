"""The single exception root of Waymark's Python code.

Every error a user can meet is a subclass that builds its own message from its
arguments, so that a CLI or an API can show `str(error)` as is.
"""


class WaymarkError(Exception):
    """Root of all Waymark errors."""

    #: Stable machine-readable code, used by the API's JSON errors and the CLI.
    code: str = "waymark_error"
