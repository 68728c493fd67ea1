"""The HTTP API: routes, request and response bodies, dependencies, answers and errors."""
