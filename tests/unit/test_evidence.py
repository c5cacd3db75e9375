"""Which code reads its own package files by path (and so cannot run from inside a zip)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_tree

from packer.evidence import find_evidence

READS_BY_PATH = {
    "open next to the module": """
import os
with open(os.path.join(os.path.dirname(__file__), "base.yml")) as f:
    BASE = f.read()
""",
    "a folder walked, from a function's return": """
import os
import pkg

class Command:
    def handle_template(self, subdir):
        return os.path.join(pkg.__path__[0], "conf", subdir)

    def handle(self):
        template_dir = self.handle_template("project")
        for root, dirs, files in os.walk(template_dir):
            pass
""",
    "pathlib": """
from pathlib import Path
THEMES = Path(__file__).parent / "themes"
def themes():
    return sorted(p.stem for p in THEMES.glob("*.json"))
""",
    "an attribute of self": """
import os
class Loader:
    def __init__(self):
        self.root = os.path.dirname(__file__)
    def load(self, name):
        return open(os.path.join(self.root, name)).read()
""",
    "pkg_resources": """
import pkg_resources
GRAMMAR = pkg_resources.resource_filename(__name__, "grammar.txt")
""",
    "as_file, as certifi gives its CA bundle": """
from importlib.resources import as_file, files
_CTX = None
def where():
    global _CTX
    _CTX = as_file(files("pkg").joinpath("cacert.pem"))
    return str(_CTX.__enter__())
""",
    "as_file through the module, on __package__": """
import importlib.resources
def table():
    ref = importlib.resources.files(__package__) / "table.bin"
    return importlib.resources.as_file(ref)
""",
    "the older resources.path()": """
from importlib import resources
def where():
    return resources.path("pkg", "cacert.pem")
""",
}

FINE_IN_A_ZIP = {
    "importlib.resources": """
from importlib.resources import files
DATA = files(__package__).joinpath("data.txt").read_text()
""",
    "as_file on another distribution's resource": """
from importlib.resources import as_file, files
def other():
    return as_file(files("somebody_else").joinpath("data.bin"))
""",
    "a function of its own named as_file": """
import os.path
def as_file(name):
    return name
def path(name):
    return as_file(name)
FILES = [path(n) for n in ("a", "b")]
""",
    "another module's file": """
import os
def where(module):
    return os.path.exists(module.__file__)
""",
    "only named": """
import logging
log = logging.getLogger(__file__)
print("loaded from", __file__)
""",
    "a condition about __file__": """
import sys
from pathlib import Path
def this_program():
    program = Path(sys.argv[0]).resolve()
    if not (program / "__main__.py").is_file():
        return None
    return program if Path(__file__).resolve().is_relative_to(program) else None
""",
    "only when run as a script": """
import os
if __name__ == "__main__":
    print(open(os.path.join(os.path.dirname(__file__), "table.txt")).read())
""",
}


@pytest.mark.parametrize("code", READS_BY_PATH.values(), ids=READS_BY_PATH)
def test_reading_by_path_is_evidence(tmp_path: Path, code: str) -> None:
    write_tree(tmp_path, {"pkg/__init__.py": "", "pkg/mod.py": code})
    found = find_evidence(tmp_path, ["pkg/__init__.py", "pkg/mod.py"])
    assert found is not None and found.module == "pkg/mod.py", found


@pytest.mark.parametrize("code", FINE_IN_A_ZIP.values(), ids=FINE_IN_A_ZIP)
def test_code_that_works_in_a_zip_is_not(tmp_path: Path, code: str) -> None:
    write_tree(tmp_path, {"pkg/__init__.py": "", "pkg/mod.py": code})
    assert find_evidence(tmp_path, ["pkg/__init__.py", "pkg/mod.py"]) is None


def test_a_path_made_in_one_module_and_opened_in_another(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/paths.py": "import os\nDATA_DIR = os.path.join(os.path.dirname(__file__), 'data')\n",
        "pkg/use.py": "import os\nfrom .paths import DATA_DIR\nNAMES = os.listdir(DATA_DIR)\n",
    })  # fmt: skip
    found = find_evidence(tmp_path, ["pkg/__init__.py", "pkg/paths.py", "pkg/use.py"])
    assert found is not None and found.module == "pkg/use.py"
    assert str(found) == "pkg/use.py: os.listdir() on a path made from __file__ or __path__"


def test_tests_shipped_in_a_distribution_do_not_count(tmp_path: Path) -> None:
    code = READS_BY_PATH["open next to the module"]
    write_tree(tmp_path, {"pkg/tests/test_x.py": code, "pkg/tests/helper.py": code})
    assert find_evidence(tmp_path, ["pkg/tests/test_x.py", "pkg/tests/helper.py"]) is None


def test_old_metadata_saying_not_zip_safe(tmp_path: Path) -> None:
    write_tree(tmp_path, {"pkg/__init__.py": "", "pkg-1.0.egg-info/not-zip-safe": "\n"})
    found = find_evidence(tmp_path, ["pkg/__init__.py", "pkg-1.0.egg-info/not-zip-safe"])
    assert found is not None and "not zip-safe" in found.what


def test_code_that_does_not_parse_is_no_evidence(tmp_path: Path) -> None:
    write_tree(tmp_path, {"pkg/mod.py": "open(__file__ +\n"})
    assert find_evidence(tmp_path, ["pkg/mod.py"]) is None
