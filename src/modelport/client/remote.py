"""Calls to a modelport server, with its errors turned back into modelport's own classes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from ..errors import ModelportError, Unavailable, error_for

ERROR_CODE_HEADER = "x-modelport-error"
SIGNATURE_HEADER = "x-modelport-signature"
ENCRYPTION_HEADER = "x-modelport-encryption"
RELEASE_HEADER = "x-modelport-release"
FALLBACK_STATUSES = {429, 500, 502, 503, 504}


class ServerUnavailable(Unavailable):
    """The server could not be reached, timed out, failed (5xx) or rate-limited us (429)."""

    code = "server_unavailable"


class Remote:
    """The HTTP side of the SDK; a circuit breaker stops calls to a server that keeps failing."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        timeout: float,
        failures_to_open: int = 3,
        cooldown: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self.failures_to_open = failures_to_open
        self.cooldown = cooldown
        self._failures = 0
        self._open_until = 0.0

    def predict(self, ref: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/models/{ref}/predict", json={"rows": rows}).json()

    def predict_images(self, ref: str, images: list[str], top_k: int) -> dict[str, Any]:
        """Labels of base64-encoded photos, with every probability and the ``top_k`` best."""
        body = {"images": images, "top_k": top_k, "probabilities": True}
        return self._call("POST", f"/api/v1/models/{ref}/predict", json=body).json()

    def model_key(self, ref: str) -> bytes:
        import base64

        return base64.b64decode(self._call("GET", f"/api/v1/models/{ref}/key").json()["key"])

    def signing_key(self) -> str:
        return self._call("GET", "/api/v1/signing-key").json()["public_key"]

    def manifest(self, ref: str, etag: str | None, variant: str | None = None) -> httpx.Response:
        headers = {"If-None-Match": etag} if etag else {}
        params = {"variant": variant} if variant else None
        return self._call("GET", f"/api/v1/models/{ref}/manifest", headers=headers, params=params)

    def download(
        self, ref: str, progress: Callable[[int, int | None], None], variant: str | None = None
    ) -> tuple[bytes, httpx.Headers]:
        """The artifact bundle and the response headers; a broken transfer raises, leaving nothing."""
        self._check_circuit()
        chunks, done = [], 0
        try:
            params = {"variant": variant} if variant else None
            with self.http.stream(
                "GET", f"/api/v1/models/{ref}/artifact", params=params
            ) as response:
                self._raise_for_status(response, read=True)
                total = int(response.headers.get("content-length", 0)) or None
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    done += len(chunk)
                    progress(done, total)
                # Content-Length counts the encoded bytes: compare only unencoded bodies
                encoded = "content-encoding" in response.headers
                if total is not None and done != total and not encoded:
                    raise ServerUnavailable(f"The download stopped after {done} of {total} bytes.")
        except httpx.HTTPError as exc:
            raise self._unavailable(exc) from exc
        self._failures = 0
        return b"".join(chunks), response.headers

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self._check_circuit()
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unavailable(exc) from exc
        self._raise_for_status(response)
        self._failures = 0
        return response

    def _raise_for_status(self, response: httpx.Response, read: bool = False) -> None:
        if response.status_code < 400 or response.status_code == 304:
            return
        if read:
            response.read()
        if response.status_code in FALLBACK_STATUSES:
            self._failed()
            message = error_message(response)
            raise ServerUnavailable(f"The server answered {response.status_code}: {message}")
        raise server_error(response)

    def _check_circuit(self) -> None:
        if time.monotonic() < self._open_until:
            raise ServerUnavailable(
                f"The server failed {self.failures_to_open} times in a row; calls pause for "
                f"{self.cooldown:g} s (circuit open)."
            )

    def _failed(self) -> None:
        self._failures += 1
        if self._failures >= self.failures_to_open:
            self._open_until = time.monotonic() + self.cooldown
            self._failures = 0

    def _unavailable(self, exc: Exception) -> ModelportError:
        self._failed()
        return ServerUnavailable(f"The server at {self.http.base_url} is unreachable: {exc}")

    def close(self) -> None:
        self.http.close()


def error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code} from {response.request.url}"


def server_error(response: httpx.Response) -> ModelportError:
    """The error the server raised, as the same modelport class (by its stable code)."""
    return error_for(response.headers.get(ERROR_CODE_HEADER, ""), error_message(response))
