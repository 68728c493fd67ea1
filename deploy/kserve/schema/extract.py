"""Write the InferenceService's OpenAPI v3 schema, taken unchanged from a KServe release's CRD
file, as the JSON that ``tests/unit/test_kserve.py`` validates ``deploy/kserve/`` against
offline (a 2 MB YAML file would take the fast tier a second to parse; the JSON takes 30 ms):

    git show v0.20.0:config/crd/full/serving.kserve.io_inferenceservices.yaml > /tmp/crd.yaml
    cd deploy/kserve/schema && python extract.py /tmp/crd.yaml inferenceservice-v1beta1.json

README.md beside it records the release, commit and checksum of the CRD file it came from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml


def main() -> None:
    source, target = (Path(a) for a in sys.argv[1:3])
    crd = yaml.load(source.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert crd["kind"] == "CustomResourceDefinition", crd["kind"]
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema = version["schema"]["openAPIV3Schema"]
    document = {
        "group": crd["spec"]["group"],
        "kind": crd["spec"]["names"]["kind"],
        "version": version["name"],
        "openAPIV3Schema": schema,
    }
    target.write_text(json.dumps(document, separators=(",", ":"), ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
