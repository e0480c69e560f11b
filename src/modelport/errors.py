"""One exception tree for modelport; each error knows its HTTP status and a stable code.

    ModelportError (500)
    ├── InvalidInput (400, ValueError)
    │   ├── InvalidDataset        a file that cannot be read as a table, an empty one ...
    │   ├── InvalidTarget         the target column is missing, constant, too fine-grained ...
    │   ├── InvalidParameter      a bad option: negative time budget, unknown metric ...
    │   ├── InvalidReference      a model reference that does not parse
    │   └── SchemaMismatch        rows at predict time do not fit the model's input schema
    ├── Unauthorized (401)        no API key, or an unknown or revoked one
    ├── Forbidden (403)           the key's scope or model list does not cover the request
    ├── NotFound (404, LookupError)
    │   └── ModelNotFound
    ├── Conflict (409)
    ├── PayloadTooLarge (413)     a body or batch over the server's limits
    ├── UnsupportedMediaType (415) a body sent with the wrong Content-Type
    ├── RateLimited (429)         the key's request rate is used up; ``retry_after`` seconds
    ├── Unavailable (503)         a model that cannot be loaded now, or a prediction timed out
    ├── IntegrityError (500)      a stored file does not match its SHA-256
    ├── ExportError (422)         a model could not be converted to ONNX or failed the parity check
    └── MissingDependency (500, ImportError)

The server maps an error to a response with ``status`` and ``{"error": message}``; the client maps a
response back with :func:`error_for` so both sides raise the same class.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import ClassVar

_BY_CODE: dict[str, type[ModelportError]] = {}


class ModelportError(Exception):
    """Base class: every error modelport raises on purpose derives from it."""

    status: ClassVar[HTTPStatus] = HTTPStatus.INTERNAL_SERVER_ERROR
    code: ClassVar[str] = "internal"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            _BY_CODE[cls.code] = cls

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__doc__ or ""


class InvalidInput(ModelportError, ValueError):
    """The input breaks a rule; the message says which and how to fix it."""

    status = HTTPStatus.BAD_REQUEST
    code = "invalid_input"


class InvalidDataset(InvalidInput):
    """A dataset file cannot be read or holds nothing to learn from."""

    code = "invalid_dataset"


class InvalidTarget(InvalidInput):
    """The target column is missing or unusable for the task."""

    code = "invalid_target"


class InvalidParameter(InvalidInput):
    """An option has a value outside its allowed range."""

    code = "invalid_parameter"


class InvalidReference(InvalidInput):
    """A model reference (``name``, ``name:3``, ``name@alias``) does not parse."""

    code = "invalid_reference"


class SchemaMismatch(InvalidInput):
    """Rows at predict time do not fit the model's input schema."""

    code = "schema_mismatch"


class Unauthorized(ModelportError):
    """The request carries no valid API key."""

    status = HTTPStatus.UNAUTHORIZED
    code = "unauthorized"


class Forbidden(ModelportError):
    """The API key is valid but may not do this."""

    status = HTTPStatus.FORBIDDEN
    code = "forbidden"


class PayloadTooLarge(InvalidInput):
    """The request body or batch is larger than the server accepts."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "too_large"


class UnsupportedMediaType(InvalidInput):
    """A request body of a type the endpoint does not take (e.g. JSON without application/json)."""

    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_media_type"


class RateLimited(ModelportError):
    """The API key sent more requests than its rate allows."""

    status = HTTPStatus.TOO_MANY_REQUESTS
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(ModelportError):
    """The server cannot answer now (model failed to load, prediction timed out)."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "unavailable"


class NotFound(ModelportError, LookupError):
    """Something that was asked for does not exist."""

    status = HTTPStatus.NOT_FOUND
    code = "not_found"


class ModelNotFound(NotFound):
    """No model, version or alias matches the reference."""

    code = "model_not_found"


class Conflict(ModelportError):
    """The request clashes with the current state (e.g. an alias that already exists)."""

    status = HTTPStatus.CONFLICT
    code = "conflict"


class IntegrityError(ModelportError):
    """A stored or downloaded file does not match its recorded SHA-256."""

    code = "integrity"


class ExportError(ModelportError):
    """A model could not be converted to ONNX, or the ONNX model disagrees with the original."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "export_failed"


class MissingDependency(ModelportError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    code = "missing_dependency"


def error_for(code: str, message: str) -> ModelportError:
    """Rebuild the error a peer raised from its stable ``code`` (unknown codes give the base class)."""
    return _BY_CODE.get(code, ModelportError)(message)
