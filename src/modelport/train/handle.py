"""What the job runner needs from a running job, whichever backend runs it."""

from __future__ import annotations

from typing import Any, Protocol

from ..errors import ModelportError

MAX_ERROR = 2000


class JobFailed(Exception):
    """The job ended without a model; the message says why, ``details`` (the traceback) go to
    the job log."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


class JobHandle(Protocol):
    """A job started on a backend (a local process, a Ray task)."""

    @property
    def where(self) -> str: ...

    def poll(self, timeout: float) -> list[dict[str, Any]]: ...

    @property
    def finished(self) -> bool: ...

    def result(self) -> bytes: ...

    def kill(self) -> None: ...


def failure_message(exc: BaseException) -> str:
    """One paragraph for the job's ``error`` field."""
    from .script import UserCodeError

    if isinstance(exc, ModelportError):
        text = exc.message
    elif isinstance(exc, UserCodeError):
        text = f"{exc} (the job log has the traceback)"
    elif isinstance(exc, MemoryError):
        text = "The job ran out of memory (MODELPORT_JOB_MEMORY_MB); use a smaller dataset sample."
    else:
        text = f"Training failed with {type(exc).__name__}: {exc} (the job log has the traceback)"
    return text[:MAX_ERROR]
