"""User-facing errors.

Every problem with a user's input (a model, a target file, a trace, a pass
option) is raised as a :class:`CimError` whose message is one line naming the
file, node, key or value at fault. Command-line tools print it without a
traceback and exit non-zero.
"""


class CimError(Exception):
    """An error in the user's input, reported as one line."""
