"""Domain errors that carry their exit code, so the CLI can tell users whether a retry can help.

Messages name the problem and the fix in one line: operators read them in Argo's step log, where a
traceback hides the one sentence that matters.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes shared by every stage; Argo's retryStrategy keys on TRANSIENT alone."""

    OK = 0
    FAILURE = 1
    BAD_INPUT = 2
    NOTHING_TO_DO = 3
    TRANSIENT = 75  # EX_TEMPFAIL from sysexits.h


class DeepLulcError(Exception):
    """Base class: a problem the user can act on."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, problem: str, *, fix: str | None = None) -> None:
        self.problem = problem.rstrip(".")
        self.fix = fix.rstrip(".") if fix else None
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The single line printed on stderr."""
        text = self.problem if self.fix is None else f"{self.problem}; fix: {self.fix}"
        return " ".join(text.split())


class BadInputError(DeepLulcError):
    """The input or the parameters are wrong: fix them, do not retry."""

    exit_code = ExitCode.BAD_INPUT


class NothingToDoError(DeepLulcError):
    """The request is valid but selects nothing (no scenes, every frame cloudy)."""

    exit_code = ExitCode.NOTHING_TO_DO


class TransientError(DeepLulcError):
    """Network or storage trouble that the same command may get past on a retry."""

    exit_code = ExitCode.TRANSIENT
