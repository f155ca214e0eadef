"""The one exception users see: a single line that names the culprit."""


class SynthError(Exception):
    """A duck_synth error with a one-line message naming what was wrong."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class Cancelled(SynthError):
    """The running statement was asked to stop (a client's cancel, Ctrl-C, a timeout)."""

    def __init__(self, message: str = "cancelled"):
        super().__init__(message)
