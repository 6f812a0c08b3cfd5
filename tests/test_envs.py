"""envs/*.yaml: they parse, pin exactly, install scopeflow with the technique's extra, and list
every third-party package the technique's code imports; every rule's conda env exists."""

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "scopeflow"
SHARED = ("io", "optics", "nn", "tracking")
SHARED_FILES = ("__init__.py", "__main__.py", "cli.py", "options.py", "stage.py", "schema.py")
# import name -> conda-forge package name
CONDA_NAME = {
    "torch": "pytorch",
    "yaml": "pyyaml",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "rsciio": "rosettasciio",
    "dask": "dask-core",
    "matplotlib": "matplotlib-base",
    "cv2": "opencv",
    "PIL": "pillow",
    "PtyLab": "ptylab",  # PyPI only: in the env's pip section
}
TECHNIQUES = sorted(p.stem for p in (ROOT / "envs").glob("*.yaml"))


def _imports(files):
    names = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "scopeflow"}


def _technique_files(technique):
    files = list((SRC / technique).rglob("*.py"))
    for pkg in SHARED:
        files += list((SRC / pkg).rglob("*.py"))
    files += [SRC / f for f in SHARED_FILES if (SRC / f).exists()]
    return files


def _deps(env):
    conda, pip = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += dep["pip"]
        else:
            name, _, version = dep.partition("=")
            conda[name] = version
    return conda, pip


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_env_parses_pins_and_installs_the_extra(technique):
    env = yaml.safe_load((ROOT / "envs" / f"{technique}.yaml").read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    conda, pip = _deps(env)
    unpinned = [n for n, v in conda.items() if not re.fullmatch(r"\d+(\.\d+)*", v)]
    assert not unpinned, f"envs/{technique}.yaml: not pinned exactly: {unpinned}"
    assert f"-e ..[{technique}]" in pip, "scopeflow must be installed with its extra"
    assert (SRC / technique).is_dir(), f"envs/{technique}.yaml has no technique package"


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_env_lists_what_the_technique_imports(technique):
    env = yaml.safe_load((ROOT / "envs" / f"{technique}.yaml").read_text())
    conda, pip = _deps(env)
    listed = set(conda) | {p.split("==")[0] for p in pip}
    needed = {CONDA_NAME.get(n, n) for n in _imports(_technique_files(technique))}
    missing = sorted(needed - listed)
    assert not missing, f"envs/{technique}.yaml lacks packages its code imports: {missing}"


def test_every_rule_has_an_existing_conda_env():
    for smk in (ROOT / "rules").glob("*.smk"):
        text = smk.read_text()
        rules = re.split(r"^rule ", text, flags=re.M)[1:]
        for block in rules:
            name = block.split(":")[0]
            if name == "all":
                continue
            m = re.search(r"conda:\s*\n\s*env_file\(\"(\w+)\"\)", block)
            assert m, f"{smk.name}: rule {name} has no conda: env_file(...)"
            assert (ROOT / "envs" / f"{m.group(1)}.yaml").is_file(), f"rule {name}: env missing"
