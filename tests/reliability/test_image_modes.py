"""Every file of the image-mode matrix (``tests/support/imagegen.py``) through a real server
process: the status and the answer are the in-process pipeline's (``tests/unit/media/
test_image_modes.py``); no 5xx, no dropped connection, the server stays ready."""

from __future__ import annotations

from collections import Counter

import httpx
import numpy as np

from app.media import preprocess
from tests.support import imagegen
from tests.support.fakes import FakeModel

MATRIX = list(imagegen.mode_matrix())


def test_every_file_of_the_matrix_through_a_real_server(server):
    """Over HTTP: 200 with exactly the pipeline's answer, or the same 4xx; no 5xx, no
    dropped connection; the server stays ready."""
    model = FakeModel(1)
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for sample in MATRIX:
            response = client.post("/v1/encode", files={"file": (sample.name, sample.data)})
            statuses[response.status_code] += 1
            try:
                expected = preprocess.load_upload(sample.data, 16_000_000, sample.name)
            except preprocess.ImageError as error:
                assert response.status_code == error.status_code, sample.name
                continue
            assert response.status_code == 200, (sample.name, response.text)
            mu = model.call("encode", {"images": expected[None]})["mu"]
            np.testing.assert_allclose(response.json()["mu"], mu, atol=1e-5, err_msg=sample.name)
        assert client.get("/readyz").status_code == 200
    assert not any(status >= 500 for status in statuses), statuses
