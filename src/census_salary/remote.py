"""Score rows on a running `census serve` (for example on Heroku) instead of locally."""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from http import HTTPStatus
from typing import Any

import numpy as np
from pydantic import ValidationError

from census_salary.bundle import Bundle
from census_salary.contract import NUMERICAL, Columns
from census_salary.errors import InputError, RemoteError
from census_salary.metadata import BundleMetadata

logger = logging.getLogger(__name__)


def open_remote(url: str, api_key: str | None = None, batch_size: int = 1000) -> Bundle:
    """The model a running `census serve` holds, as a bundle that scores over HTTP.

    Its metadata (threshold, vocabularies) comes from the server's /metadata, so the
    output of `census predict --url` is the output of `census predict` on that bundle;
    nothing is written before the server has answered.
    """
    scorer = RemoteScorer(url, api_key=api_key, batch_size=batch_size)
    payload = scorer.request("GET", "/metadata")
    if isinstance(payload, dict):
        payload.pop("columns", None)  # the contract document, which this side has too
    try:
        metadata = BundleMetadata.model_validate(payload)
    except ValidationError:
        raise RemoteError(
            f"{scorer.base}/metadata did not answer with this census version's model metadata; "
            "check --url, or use the same census version on both sides."
        ) from None
    return Bundle(metadata, scorer, scorer.base)


class RemoteScorer:
    """Scores checked columns through POST /predict, in batches under the server's limit."""

    def __init__(
        self, url: str, api_key: str | None = None, batch_size: int = 1000, timeout: float = 60
    ) -> None:
        self.base = _checked_url(url).rstrip("/")
        self.api_key = api_key
        self.batch_size = batch_size
        self.timeout = timeout

    def probabilities(self, columns: Columns) -> np.ndarray:
        names = list(columns)
        values = [
            [int(v) for v in columns[name]] if name in NUMERICAL else list(columns[name])
            for name in names
        ]
        rows = [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
        return self._score(rows)

    def _score(self, rows: list[dict[str, Any]]) -> np.ndarray:
        size = self.batch_size  # a 413 may lower it for later calls; this one keeps its own
        parts = [self._post(rows[start : start + size]) for start in range(0, len(rows), size)]
        return np.concatenate(parts) if parts else np.empty(0)

    def _post(self, batch: list[dict[str, Any]]) -> np.ndarray:
        try:
            payload = self.request("POST", "/predict", {"inputs": batch})
        except _TooLarge:
            if len(batch) == 1:
                raise RemoteError(
                    f"{self.base}/predict refused even a single row as too large."
                ) from None
            # The server's row or size limit is lower than our batch: halve and go on.
            self.batch_size = max(1, len(batch) // 2)
            logger.info(
                "%s refused %d rows; sending %d at a time", self.base, len(batch), self.batch_size
            )
            return self._score(batch)
        try:
            probabilities = np.asarray(payload["probabilities"], dtype=float)
        except (KeyError, TypeError, ValueError):
            raise RemoteError(
                f"{self.base}/predict did not answer like a census server (no probabilities); "
                "check --url."
            ) from None
        if probabilities.shape != (len(batch),):
            raise RemoteError(
                f"{self.base}/predict returned {probabilities.size} predictions "
                f"for {len(batch)} rows."
            )
        return probabilities

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON request to the server; its decoded answer, or a RemoteError."""
        endpoint = self.base + path
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        # (the URL was checked when the scorer was made: `_checked_url`)
        request = urllib.request.Request(endpoint, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE and body is not None:
                raise _TooLarge from None
            raise RemoteError(f"{endpoint} answered {exc.code}: {_detail(exc)}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RemoteError(
                f"Cannot reach {endpoint} ({reason}). Check --url and that the server runs."
            ) from None
        except http.client.HTTPException as exc:  # not HTTP at all, or cut off mid-answer
            raise RemoteError(
                f"{endpoint} did not answer like an HTTP server ({exc!r}); check --url."
            ) from None
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
            raise RemoteError(f"{endpoint} did not answer with JSON.") from None


def _checked_url(url: str) -> str:
    """`url`, or an InputError when it is not an http(s) URL that urllib can open."""
    try:
        urllib.request.Request(url)  # (urllib's own parse: "Invalid IPv6 URL", say)
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (read for its check: a port that is not a number, or too big)
    except ValueError as exc:
        reason = str(exc)
    else:
        reason = ""
        if not (parts.scheme in ("http", "https") and parts.hostname):
            reason = "it needs http:// or https:// and a host"
        elif any(char.isspace() or not char.isprintable() for char in url):
            reason = "it holds a space or a control character"
    if reason:
        raise InputError(
            f"--url {url!r} is malformed ({reason}); give the server's address, such as "
            "http://localhost:8000."
        )
    return url


class _TooLarge(Exception):
    """The server answered 413."""


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        problem = json.loads(exc.read())
        return str(problem.get("detail") or problem.get("title") or exc.reason)
    except (json.JSONDecodeError, OSError, AttributeError):
        return str(exc.reason)
