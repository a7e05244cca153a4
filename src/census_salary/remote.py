"""Score rows on a running `census serve` (for example on Heroku) instead of locally."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from http import HTTPStatus
from typing import Any

import numpy as np
import pandas as pd

from census_salary.errors import RemoteError
from census_salary.schema import labels_at

logger = logging.getLogger(__name__)


class RemoteScorer:
    """Scores checked feature frames through POST /predict, in batches under the row limit.

    It offers the same `predict_frame` and `labels` as the local `Scorer`, so the CLI's
    output is the same whichever does the scoring.
    """

    def __init__(
        self, url: str, api_key: str | None = None, batch_size: int = 1000, timeout: float = 60
    ) -> None:
        self.endpoint = url.rstrip("/") + "/predict"
        self.api_key = api_key
        self.batch_size = batch_size
        self.timeout = timeout
        self.threshold: float | None = None

    def predict_frame(self, features: pd.DataFrame) -> np.ndarray:
        size = self.batch_size  # _post may lower it for later calls; this one keeps its own
        parts = [
            self._post(features.iloc[start : start + size])
            for start in range(0, len(features), size)
        ]
        return np.concatenate(parts) if parts else np.empty(0)

    def labels(self, probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
        cut = threshold if threshold is not None else self.threshold
        if cut is None:  # nothing was scored, so there is nothing to label
            return np.empty(0, dtype=object)
        return labels_at(probabilities, cut)

    def _post(self, batch: pd.DataFrame) -> np.ndarray:
        records = batch.astype(object).where(batch.notna(), None).to_dict("records")
        body = json.dumps({"inputs": records}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE and len(batch) > 1:
                # The server's row or size limit is lower than our batch: halve and go on.
                self.batch_size = max(1, len(batch) // 2)
                logger.info(
                    "%s refused %d rows; sending %d at a time",
                    self.endpoint,
                    len(batch),
                    self.batch_size,
                )
                return self.predict_frame(batch)
            raise RemoteError(f"{self.endpoint} answered {exc.code}: {_detail(exc)}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RemoteError(
                f"Cannot reach {self.endpoint} ({reason}). Check --url and that the server runs."
            ) from None
        except json.JSONDecodeError:
            raise RemoteError(f"{self.endpoint} did not answer with JSON.") from None
        try:
            self.threshold = float(payload["threshold"])
            probabilities = np.asarray(payload["probabilities"], dtype=float)
        except (KeyError, TypeError, ValueError):
            raise RemoteError(
                f"{self.endpoint} did not answer like a census server (no threshold and "
                "probabilities); check --url."
            ) from None
        if len(probabilities) != len(batch):
            raise RemoteError(
                f"{self.endpoint} returned {len(probabilities)} predictions for {len(batch)} rows."
            )
        return probabilities


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        problem = json.loads(exc.read())
        return str(problem.get("detail") or problem.get("title") or exc.reason)
    except (json.JSONDecodeError, OSError, AttributeError):
        return str(exc.reason)
