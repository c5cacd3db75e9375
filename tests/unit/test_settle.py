"""What an install leaves that depends on where the build ran is taken out before packing."""

from __future__ import annotations

from pathlib import Path

from helpers import write_tree

from packer.dependencies import settle


def test_scripts_and_install_traces_go_with_their_record_lines(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "bin/tool": "#!/home/someone/.venv/bin/python\nimport tool\n",
        "tool/__init__.py": "",
        "tool-1.0.dist-info/METADATA": "Name: tool\nVersion: 1.0\n",
        "tool-1.0.dist-info/direct_url.json": '{"url": "file:///tmp/xyz/tool.whl"}',
        "tool-1.0.dist-info/RECORD": (
            "tool/__init__.py,sha256=abc,0\nbin/tool,sha256=def,40\n../../bin/other,,\n"
            "tool-1.0.dist-info/direct_url.json,sha256=ghi,30\ntool-1.0.dist-info/RECORD,,\n"
        ),
    })  # fmt: skip
    settle(tmp_path)
    assert not (tmp_path / "bin").exists()
    assert not (tmp_path / "tool-1.0.dist-info" / "direct_url.json").exists()
    assert (tmp_path / "tool-1.0.dist-info" / "RECORD").read_text() == (
        "tool/__init__.py,sha256=abc,0\ntool-1.0.dist-info/RECORD,,\n"
    )


def test_a_package_named_bin_stays(tmp_path: Path) -> None:
    record = "bin/__init__.py,sha256=abc,0\nbin-1.0.dist-info/RECORD,,\n"
    write_tree(tmp_path, {"bin/__init__.py": "", "bin-1.0.dist-info/RECORD": record})
    settle(tmp_path)
    assert (tmp_path / "bin" / "__init__.py").exists()
    assert (tmp_path / "bin-1.0.dist-info" / "RECORD").read_text() == record
