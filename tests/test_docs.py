"""The documentation's Python code runs: the worked example of docs/python-api.md executes, and
every other Python block of the docs compiles and imports names that exist."""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


def test_python_api_example_runs(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(DOCS / "python-api.md")
    assert blocks, "docs/python-api.md has no ```python block"
    monkeypatch.chdir(tmp_path)  # the example writes into runs/api/
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        exec(compile(blocks[0], "docs/python-api.md", "exec"), {"__name__": "docs_example"})
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    metrics = ast.literal_eval(printed.strip().splitlines()[-1])
    assert set(metrics) == {"R_tra", "length", "R_each", "MCD"}
    assert metrics["R_tra"] > 0 and 1 <= metrics["length"] <= 30
    assert (tmp_path / "runs" / "api" / "dorl" / "policy.json").is_file()


@pytest.mark.parametrize("page", sorted(DOCS.rglob("*.md")), ids=lambda p: str(p.relative_to(DOCS)))
def test_every_python_block_compiles_and_imports_existing_names(page):
    for block in python_blocks(page):
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("recsim"):
                module = importlib.import_module(node.module)
                missing = [a.name for a in node.names if not hasattr(module, a.name)]
                assert not missing, f"{page.name}: {node.module} has no {missing}"


def test_the_package_cites_only_what_it_ships():
    """Docstrings and specs cite docs pages of the repository (which must exist) or papers,
    never a file outside it."""
    root = DOCS.parent
    outside = "REFERENCE" + ".md"
    cited = re.compile(r"docs/([\w/-]+\.md)")
    files = [p for folder in ("recsim", "pipelines", "benchmarks", "tests") for p in (root / folder).rglob("*")
             if p.suffix in (".py", ".yaml") and p.is_file()]
    assert files
    for path in files:
        text = path.read_text()
        assert outside not in text, f"{path.relative_to(root)} cites {outside}, which is not in the repository"
        for page in cited.findall(text):
            assert (DOCS / page).is_file(), f"{path.relative_to(root)} cites docs/{page}, which does not exist"
