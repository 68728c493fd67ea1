"""HTTP content negotiation: JSON, PNG or raw pixels, from the request's Accept header."""

from __future__ import annotations

JSON = "application/json"
PNG = "image/png"
NPY = "application/x-npy"
RAW = "application/octet-stream"
IMAGE_TYPES = (JSON, PNG, NPY, RAW)


def _quality(accept: str, media_type: str) -> tuple[float, int]:
    """(q, specificity) of the Accept range that best matches ``media_type``."""
    main_type = media_type.split("/")[0]
    best = (0.0, -1)
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        media_range = fields[0].lower()
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
        if media_range == media_type:
            specificity = 2
        elif media_range == f"{main_type}/*":
            specificity = 1
        elif media_range == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best[1]:  # the most specific matching range decides (RFC 9110)
            best = (q, specificity)
    return (best[0], best[1])


def choose(accept: str | None, offers: tuple[str, ...] = IMAGE_TYPES) -> str | None:
    """The offer the client prefers; the first offer when it has no preference; None if none
    is acceptable (406)."""
    if not accept or not accept.strip() or accept == "*/*":
        return offers[0]
    ranked = []
    for index, offer in enumerate(offers):
        q, specificity = _quality(accept, offer)
        if q > 0:
            ranked.append((q, specificity, -index, offer))
    return max(ranked)[3] if ranked else None
