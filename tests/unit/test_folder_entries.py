"""Which folder entries an archive gets: only those a namespace package is found through."""

from __future__ import annotations

from packer.plan import folder_entries


def test_only_folders_that_can_be_namespace_packages_on_a_path_entry() -> None:
    names = [
        "top/m.py",  # a namespace package at the archive's top
        "pkg/__init__.py", "pkg/mod.py", "pkg/data/table.txt",  # a package and its data
        "_packer/site-packages/ns/a.py", "_packer/site-packages/ns/sub/b.py",
        "_packer/site-packages/reg/__init__.py", "_packer/site-packages/reg/locale/x.mo",
        "_packer/variants/v-1.0-abc/ns3/c.py",
        "_packer/native/n-1.0/ns2/b.py",  # extracted: never imported from the zip
        "_packer/runtime-config.py", "_packer/manifest.json",
    ]  # fmt: skip
    assert folder_entries(names) == [
        "_packer/site-packages/ns/",
        "_packer/site-packages/ns/sub/",
        "_packer/variants/v-1.0-abc/ns3/",
        "top/",
    ]
