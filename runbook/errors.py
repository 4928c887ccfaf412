"""Domain errors. Each message is one line that says what is wrong and what to do."""


class OperatorError(Exception):
    """The installation or the options are not usable as given (a usage error, not a failed check)."""


class Problem(Exception):
    """A check found something wrong; the message names it and the fix."""


class NotApplicable(Exception):
    """A check does not apply to this installation; the message says why (reported as a skip)."""
