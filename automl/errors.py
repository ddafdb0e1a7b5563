"""The one exception hierarchy of automl.

Every error automl raises on purpose derives from :class:`AutoMLError`, so callers can catch one
class. Errors about user input carry the field path, the rule and the value, in the form
``spec.parameters[2].max: must be greater than min (0.1); got 0.01``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AlreadyExistsError",
    "AutoMLError",
    "ExecutorError",
    "ExperimentBusyError",
    "NotFoundError",
    "SpecError",
    "SpecIssue",
    "StorageError",
    "SuggestionError",
]


class AutoMLError(Exception):
    """Root of every error raised by automl."""


@dataclass(frozen=True, slots=True)
class SpecIssue:
    """One problem found in an experiment spec.

    Attributes:
        path: Dotted field path, e.g. ``spec.parameters[2].feasibleSpace.max``.
        message: The rule that was broken and the value that broke it.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(AutoMLError, ValueError):
    """Bad input: a spec, a parameter, a setting or an option that breaks a rule.

    Attributes:
        issues: Every problem found, each with its field path.
    """

    def __init__(self, issues: Sequence[SpecIssue] | str, path: str = "") -> None:
        if isinstance(issues, str):
            issues = [SpecIssue(path, issues)]
        self.issues: tuple[SpecIssue, ...] = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues))

    @property
    def path(self) -> str:
        """The field path of the first issue."""
        return self.issues[0].path if self.issues else ""


class SuggestionError(AutoMLError):
    """The search algorithm could not produce a suggestion."""


class ExecutorError(AutoMLError):
    """A trial could not be started, watched or cancelled."""


class StorageError(AutoMLError):
    """The store could not be reached or a database operation failed."""


class NotFoundError(AutoMLError, KeyError):
    """An experiment or trial with the given name does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class AlreadyExistsError(AutoMLError):
    """An experiment with the given name already exists."""


class ExperimentBusyError(AutoMLError):
    """Another live controller is running the experiment."""
