"""The one error every operation raises for an action the rules do not allow."""


class OperationError(ValueError):
    """An action the rules do not allow; the message is shown to the person as is."""
