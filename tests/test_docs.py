"""The documents' claims point at tests: every test the threat model names must exist, so a
renamed or deleted test cannot leave a claim unbacked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCUMENTS = ["docs/threat-model.md", "README.md"]


def _test_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names.update(re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.M))
    return names


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_test_a_document_names_exists(document):
    text = (ROOT / document).read_text()
    named = set(re.findall(r"\b(test_[a-z0-9_]+)\b", text))
    modules = {path.stem for path in (ROOT / "tests").rglob("test_*.py")}
    missing = sorted(named - _test_names() - modules)
    assert not missing, f"{document} names tests that do not exist: {missing}"
