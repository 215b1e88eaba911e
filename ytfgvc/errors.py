"""Errors that tell the user what went wrong and what to do about it.

The CLI turns a :class:`YtfgvcError` into one line on stderr and a non-zero exit; a
traceback is only shown for bugs (anything else).
"""

from __future__ import annotations


class YtfgvcError(Exception):
    """A problem the user can fix; ``hint`` says how."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class ValidationError(YtfgvcError):
    """Input failed validation; ``problems`` lists every defect found, each with its location."""

    def __init__(self, what: str, problems: list[str], hint: str | None = None):
        self.problems = list(problems)
        n = len(self.problems)
        super().__init__(f"{what}: {n} problem{'s' if n != 1 else ''}", hint)

    def report(self) -> str:
        lines = [str(self)]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)
