"""Download archives of export folders: one zip per folder, beside the exports but not among them."""

from __future__ import annotations

import os
import zipfile

from ftstudio.export.files import downloads


def test_each_export_folder_downloads_as_one_zip_and_stale_zips_go(tmp_path):
    exports = tmp_path / "exports"
    merged = exports / "demo-r1-merged"
    merged.mkdir(parents=True)
    (merged / "model.safetensors").write_bytes(b"weights")
    (merged / "config.json").write_text("{}")
    (exports / "demo-r1-f16.gguf").write_bytes(b"GGUF")

    found = downloads(exports)
    archive = exports / ".archives" / "demo-r1-merged.zip"
    assert found == [merged.parent / "demo-r1-f16.gguf", archive]  # the file itself; the folder as one zip
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == ["demo-r1-merged/config.json", "demo-r1-merged/model.safetensors"]
        assert zf.read("demo-r1-merged/model.safetensors") == b"weights"

    # Unchanged folder: the same zip, not made again; a changed one: made again with the new file.
    made = archive.stat().st_mtime_ns
    assert downloads(exports)[1] == archive and archive.stat().st_mtime_ns == made
    (merged / "model.safetensors").write_bytes(b"new weights")
    later = archive.stat().st_mtime + 5
    os.utime(merged / "model.safetensors", (later, later))
    downloads(exports)
    with zipfile.ZipFile(archive) as zf:
        assert zf.read("demo-r1-merged/model.safetensors") == b"new weights"

    # The folder deleted: its zip goes too, so the archives never pile up; nothing hidden is offered.
    for path in merged.iterdir():
        path.unlink()
    merged.rmdir()
    assert downloads(exports) == [exports / "demo-r1-f16.gguf"]
    assert list((exports / ".archives").iterdir()) == []
