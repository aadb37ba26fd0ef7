"""The OpenAPI 3.1 document of a replica, served at /openapi.json.

Built from the loaded model so `instances` declares the exact number of features. It says
exactly what the server accepts, no more and no less: each feature is a JSON number (not true or
false) within float32's range. tests/serve/test_contract.py holds a real replica to it with
schemathesis and all of its checks.
"""

from __future__ import annotations

import numpy as np

# The server converts features to float32, so a JSON number is a feature exactly when
# |x| <= this (3.4028234663852886e+38); the schema states it and app.py checks it.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def build_openapi(n_features: int | None, kind: str | None, max_body_bytes: int) -> dict:
    feature = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX,
               "description": f"A float32 value: a number with |x| <= {FLOAT32_MAX!r} (true, false are not numbers)."}
    row = {"type": "array", "items": feature}
    if n_features:
        row.update(minItems=n_features, maxItems=n_features)
    health = {"200": {"description": "yes", "content": {"application/json": {"schema": {"type": "object"}}}},
              "503": _error("no")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "gpufleet model server", "version": "1",
                 "description": f"Serves a {kind or 'not yet loaded'} model. Bodies over {max_body_bytes} bytes get 413."},
        "paths": {
            "/v1/predict": {"post": {
                "operationId": "predict",
                "parameters": [{"name": "X-Deadline-Ms", "in": "header", "required": False,
                                "description": "Time budget in milliseconds; 504 when it cannot be met.",
                                "schema": {"type": "number", "exclusiveMinimum": 0}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["instances"], "additionalProperties": False,
                    "properties": {"instances": {"type": "array", "minItems": 1, "items": row}}}}}},
                "responses": {
                    "200": {"description": "One prediction per instance: a class label, or a cluster index for k-means.",
                            "content": {"application/json": {"schema": {
                                "type": "object", "required": ["predictions"],
                                "properties": {"predictions": {"type": "array"}}}}}},
                    "400": _error("Malformed JSON or header."),
                    "413": _error("Body over the size limit."),
                    "415": _error("Content type is not application/json."),
                    "422": _error("Valid JSON that is not a batch of finite rows of the right width."),
                    "429": _error("Queue full; see Retry-After."),
                    "503": _error("Not ready or draining."),
                    "504": _error("Deadline cannot be met."),
                }}},
            "/livez": {"get": {"operationId": "livez", "responses": {"200": health["200"]}}},
            "/readyz": {"get": {"operationId": "readyz", "responses": health}},
            "/metrics": {"get": {"operationId": "metrics", "responses": {"200": {
                "description": "Prometheus text format.", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"operationId": "openapi", "responses": {"200": {
                "description": "This document.", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        },
        "components": {"schemas": {"Error": {"type": "object", "required": ["error"],
                                             "properties": {"error": {"type": "string"}}}}},
    }
