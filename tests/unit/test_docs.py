"""The README and docs/ stay short, linked and true: every link resolves, the configuration
table lists every setting, the signatures table is the contract's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.test_deploy import KNOWN
from vae_contract import SIGNATURES, Tensor

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), ROOT / "benchmarks" / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_is_read_in_five_minutes():
    assert (ROOT / "README.md").stat().st_size <= 12 * 1024


def test_the_readme_maps_every_page_of_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert {p.name for p in DOCS.glob("*.md")} == set(re.findall(r"\(docs/([\w-]+\.md)\)", readme))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = target.split("#")[0]
        assert (page.parent / path).exists(), f"{page.name} links to {target}, which is not there"


def test_the_configuration_page_documents_every_setting():
    page = (DOCS / "configuration.md").read_text()
    assert KNOWN <= set(re.findall(r"`(VAE_[A-Z_]+)`", page))


def signature_table() -> str:
    """The signatures table as docs/model-format.md shows it, rendered from the contract."""

    def cell(tensors: tuple[Tensor, ...]) -> str:
        return ", ".join(
            f"`{t.name}` {t.dtype}" + (f" [{', '.join(map(str, t.shape))}]" if t.shape else "")
            for t in tensors
        )

    rows = ["| signature | inputs | outputs | what it does |", "|---|---|---|---|"]
    for name, contract in SIGNATURES.items():
        summary = contract.summary.replace("|", "\\|")
        rows.append(
            f"| `{name}` | {cell(contract.inputs)} | {cell(contract.outputs)} | {summary} |"
        )
    return "\n".join(rows)


def test_the_model_format_page_shows_the_contracts_signatures():
    assert signature_table() in (DOCS / "model-format.md").read_text()
