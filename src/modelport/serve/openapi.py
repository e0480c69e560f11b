"""The OpenAPI document of the server (served at /openapi.json, rendered at /docs)."""

from __future__ import annotations

import html
from typing import Any

from .. import __version__

ERROR = {
    "description": "Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
ERRORS = {str(code): ERROR for code in (400, 401, 403, 404, 413, 429, 503)}
REF_PARAM = {
    "name": "ref",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "name, name:VERSION or name@ALIAS",
}
NAME_PARAM = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
VERSION_PARAM = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}


def _op(
    summary: str,
    tag: str,
    params: list[dict[str, Any]] | None = None,
    body: str | None = None,
    response: str | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "parameters": params or [],
        "responses": {"200": {"description": "OK"}, **ERRORS},
    }
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    if response:
        op["responses"]["200"]["content"] = {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{response}"}}
        }
    return op


def _v2_model(suffix: str, method: str, summary: str, **kw: Any) -> dict[str, Any]:
    return {
        f"/v2/models/{{name}}{suffix}": {
            method: _op(summary, "Open Inference Protocol v2", [NAME_PARAM], **kw)
        },
        f"/v2/models/{{name}}/versions/{{version}}{suffix}": {
            method: _op(
                summary + " (one version)",
                "Open Inference Protocol v2",
                [NAME_PARAM, VERSION_PARAM],
                **kw,
            )
        },
    }


TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {
            "type": "string",
            "enum": [
                "BOOL",
                "UINT8",
                "UINT16",
                "UINT32",
                "UINT64",
                "INT8",
                "INT16",
                "INT32",
                "INT64",
                "FP16",
                "FP32",
                "FP64",
                "BYTES",
            ],
        },
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
}

B64 = {"type": "object", "required": ["b64"], "properties": {"b64": {"type": "string"}}}
IMAGE_OPTIONS = {
    "top_k": {"type": "integer", "minimum": 1, "default": 5},
    "probabilities": {"type": "boolean", "default": False},
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "modelport",
        "version": __version__,
        "description": "Predictions from stored models over three protocols, plus model downloads and usage. "
        "Send 'Authorization: Bearer <key>' when the server has API keys. Every error is "
        '{"error": "<message>"} with its status.',
    },
    "paths": {
        "/v2": {"get": _op("Server metadata", "Open Inference Protocol v2")},
        "/v2/health/live": {"get": _op("Liveness", "Open Inference Protocol v2")},
        "/v2/health/ready": {"get": _op("Readiness", "Open Inference Protocol v2")},
        **_v2_model("", "get", "Model metadata: inputs and outputs"),
        **_v2_model("/ready", "get", "Model readiness (loads the model)"),
        **_v2_model(
            "/infer",
            "post",
            "Inference; also Triton's binary tensor and classification extensions (image "
            "models: a BYTES input 'image', one encoded file per element)",
            body="InferenceRequest",
            response="InferenceResponse",
        ),
        "/v1/models/{name}": {
            "get": _op(
                "TF-Serving model status (also /versions/{v}, /labels/{alias}, /metadata)",
                "TF-Serving REST",
                [NAME_PARAM],
            )
        },
        "/v1/models/{name}:predict": {
            "post": _op(
                "TF-Serving predict: instances (rows) or inputs (columns)",
                "TF-Serving REST",
                [NAME_PARAM],
                body="TFPredictRequest",
            )
        },
        "/api/v1/models": {"get": _op("List models", "modelport")},
        "/api/v1/models/{ref}/predict": {
            "post": {
                **_op(
                    "Predict rows given as JSON objects, or images (base64 JSON or a multipart "
                    "upload: any file fields, e.g. curl -F image=@photo.jpg)",
                    "modelport",
                    [REF_PARAM],
                    response="PredictResponse",
                ),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/PredictRequest"},
                                    {"$ref": "#/components/schemas/ImagePredictRequest"},
                                ]
                            }
                        },
                        "multipart/form-data": {
                            "schema": {"$ref": "#/components/schemas/ImagePredictForm"}
                        },
                        "image/*": {  # one photo as the body; top_k, probabilities in the query
                            "schema": {"type": "string", "format": "binary"}
                        },
                    },
                },
            }
        },
        "/api/v1/models/{ref}/manifest": {
            "get": _op("Manifest (ETag; If-None-Match gives 304)", "downloads", [REF_PARAM])
        },
        "/api/v1/models/{ref}/artifact": {
            "get": _op(
                "Artifact zip, or ?format=onnx (ETag; If-None-Match gives 304)",
                "downloads",
                [REF_PARAM],
            )
        },
        "/api/v1/models/{ref}/key": {
            "get": _op("The at-rest key of an encrypted model (devices)", "downloads", [REF_PARAM])
        },
        "/api/v1/signing-key": {
            "get": _op("The public Ed25519 key that signs downloads", "downloads")
        },
        "/api/v1/usage": {
            "get": _op(
                "Usage and cost per key and model (admin keys)",
                "modelport",
                [
                    {"name": "key", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "since",
                        "in": "query",
                        "schema": {"type": "string", "format": "date-time"},
                    },
                ],
            )
        },
        "/api/v1/datasets": {
            "post": {
                **_op("Upload a dataset (multipart field 'file', or the raw body)", "training"),
                "parameters": [{"name": "filename", "in": "query", "schema": {"type": "string"}}],
                "requestBody": {
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {"file": {"type": "string", "format": "binary"}},
                            }
                        },
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        },
                    }
                },
            },
            "get": _op("List datasets", "training"),
        },
        "/api/v1/datasets/{id}": {
            "get": _op("A dataset", "training", [ID_PARAM]),
            "delete": _op("Delete a dataset (409 while a job uses it)", "training", [ID_PARAM]),
        },
        "/api/v1/jobs": {
            "post": _op("Submit a training job (201)", "training", body="JobRequest"),
            "get": _op(
                "List the latest jobs",
                "training",
                [{"name": "status", "in": "query", "schema": {"type": "string"}}],
            ),
        },
        "/api/v1/jobs/{id}": {
            "get": _op(
                "A job: status, progress, leaderboard, model, error", "training", [ID_PARAM]
            ),
            "delete": _op("Cancel a job (202 while it stops)", "training", [ID_PARAM]),
        },
        "/api/v1/jobs/{id}/events": {
            "get": _op(
                "Server-Sent Events: progress, leaderboard, then done", "training", [ID_PARAM]
            )
        },
        "/api/v1/jobs/{id}/logs": {
            "get": _op(
                "The job log (?tail= bytes)",
                "training",
                [ID_PARAM, {"name": "tail", "in": "query", "schema": {"type": "integer"}}],
            )
        },
        "/api/v1/jobs/{id}/report": {
            "get": _op(
                "An image job's report (PNG): confusion matrix, least-sure photos",
                "training",
                [ID_PARAM],
            )
        },
        "/metrics": {"get": _op("Prometheus metrics", "operations")},
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            },
            "InferenceRequest": {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "id": {"type": "string"},
                    "parameters": {"type": "object"},
                    "inputs": {"type": "array", "items": TENSOR},
                    "outputs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "parameters": {"type": "object"},
                            },
                        },
                    },
                },
            },
            "InferenceResponse": {
                "type": "object",
                "required": ["model_name", "outputs"],
                "properties": {
                    "model_name": {"type": "string"},
                    "model_version": {"type": "string"},
                    "id": {"type": "string"},
                    "outputs": {"type": "array", "items": TENSOR},
                },
            },
            "TFPredictRequest": {
                "type": "object",
                "description": 'Image models take instances [{"b64": "..."}] or '
                '[{"image": {"b64": "..."}}] and answer label, probabilities and top_k',
                "properties": {"instances": {}, "inputs": {}, "signature_name": {"type": "string"}},
            },
            "JobRequest": {
                "type": "object",
                "required": ["dataset", "name"],
                "properties": {
                    "dataset": {"type": "string"},
                    "name": {"type": "string"},
                    "target": {"type": "string"},
                    "time_budget": {"type": "number", "default": 60},
                    "task": {"enum": ["auto", "classification", "regression"]},
                    "metric": {"type": "string", "default": "auto"},
                    "seed": {"type": "integer"},
                    "estimators": {"type": "array", "items": {"type": "string"}},
                    "aliases": {"type": "array", "items": {"type": "string"}},
                    "script": {"type": "string", "description": "Python source (admin keys)"},
                    "entry": {"type": "string", "default": "train"},
                },
            },
            "PredictRequest": {
                "type": "object",
                "required": ["rows"],
                "properties": {"rows": {"type": "array", "items": {"type": "object"}}},
            },
            "ImagePredictRequest": {
                "type": "object",
                "required": ["images"],
                "properties": {
                    "images": {
                        "type": "array",
                        "items": {"oneOf": [{"type": "string"}, B64]},
                        "description": "Encoded image files (JPEG, PNG, WebP, BMP, TIFF, still "
                        'GIF) as base64 strings, data: URLs or {"b64": "..."}',
                    },
                    **IMAGE_OPTIONS,
                },
            },
            "ImagePredictForm": {
                "type": "object",
                "description": "Every file field is one image, in order; other fields are "
                "top_k and probabilities",
                "properties": {
                    "image": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    **IMAGE_OPTIONS,
                },
            },
            "PredictResponse": {
                "type": "object",
                "properties": {
                    "model": {"type": "string"},
                    "version": {"type": "integer"},
                    "predictions": {"type": "array"},
                    "probabilities": {
                        "type": "array",
                        "items": {"type": "object", "additionalProperties": {"type": "number"}},
                        "description": "Tabular classifiers always; image models when asked",
                    },
                    "top_k": {
                        "type": "array",
                        "description": "Image models: the best labels of each image",
                        "items": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "label": {"type": "string"},
                                    "score": {"type": "number"},
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}


def docs_page() -> str:
    """A self-contained HTML page listing the endpoints (no assets fetched from the internet)."""
    rows = []
    for path, methods in SPEC["paths"].items():
        for method, op in methods.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op['summary'])}</td><td>{html.escape(op['tags'][0])}</td></tr>"
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>modelport API</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}td{padding:.3em 1em;border-bottom:1px solid #ddd}</style>"
        f"</head><body><h1>modelport API {__version__}</h1><p>{html.escape(SPEC['info']['description'])}</p>"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>"
        f"<table><tr><th>method</th><th>path</th><th>what</th><th>protocol</th></tr>{''.join(rows)}</table></body></html>"
    )
