"""The one exception type users see: its message is printed as a single line by the CLI."""


class LivetexError(Exception):
    """Bad input or an impossible request; the message is meant for the user."""
