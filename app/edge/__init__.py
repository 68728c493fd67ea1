"""The HTTP edge: connections, request limits, content negotiation, request metrics."""
