"""The HTTP API: `create_app(settings)` builds it (`server.run_server` runs it).

Only this package imports fastapi. `app` holds the factory and lifespan, `middleware`
the request context (ids, security headers, HEAD, body limits, access log), `problems`
the RFC 9457 error documents, `deps` the dependencies, `models` the response bodies, and
`routes/` one router per concern: operations (health, ready), the model (metadata,
predict), the form page and the docs (/docs, /redoc, from the app's own files).
"""

from census_salary.api.app import create_app

__all__ = ["create_app"]
