"""Standard serving protocols spoken beside the service's own API: their formats, pure."""
