"""The project's own error type.

Every problem a user can fix (a bad image, a bad option, missing weights) is raised as
`StyleTransferError` with a one-line message that says what was wrong and what to do. The CLI prints
that line and exits with status 2; anything else is a bug and keeps its traceback.
"""


class StyleTransferError(ValueError):
    """A user-fixable problem, with a one-line message naming the fix."""
