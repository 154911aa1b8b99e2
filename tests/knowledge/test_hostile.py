"""Hostile files never hang ingest, exhaust its memory or lose the good files of a batch (issue 12, items 2 and 3).

Each case is built for real (a FIFO, links to /dev/zero and /proc, zip bombs written by a streamed zip writer) and
goes through the real `ftstudio ingest`; peak memory is measured inside that subprocess (VmHWM: unlike ru_maxrss
it starts afresh at exec, so it never counts the forking test process's own memory).
"""

from __future__ import annotations

import os
import resource
import socket
import sqlite3
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from kfiles import make_docx, make_epub

from ftstudio.project import Project

GOOD = "# Bees\n\nHoney bees live in colonies of many thousands of workers and one queen.\n"
MB = 1024 * 1024
# Runs the CLI in this process and reports its peak resident memory on the last line of stderr.
RSS_WRAPPER = (
    "import re, runpy, sys\n"
    "sys.argv = ['ftstudio', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('ftstudio', run_name='__main__')\n"
    "finally:\n    hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
    "    sys.stderr.write(f'\\nPEAK_RSS_KB {hwm}\\n')\n"
)


def ingest_cli(workspace: Path, *args, timeout: float = 120, limit_as: int | None = None):
    """`ftstudio ingest p ARGS --json` in a subprocess: (exit code, JSON report or None, stderr, peak RSS in MB)."""
    import json

    def cap() -> None:
        if limit_as:
            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))

    env = {**os.environ, "FTSTUDIO_ROOT": str(workspace), "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, "ingest", "p", *map(str, args), "--json"],
        capture_output=True, text=True, env=env, timeout=timeout, preexec_fn=cap,
    )  # fmt: skip
    rss_line = proc.stderr.rstrip().rsplit("\n", 1)[-1]
    assert rss_line.startswith("PEAK_RSS_KB "), proc.stderr
    report = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, report, proc.stderr, int(rss_line.split()[1]) / 1024


def by_name(report) -> dict[str, dict]:
    return {os.path.basename(d["path"]): d for d in report["documents"]}


def assert_store_ok(workspace: Path, expected: set[str]) -> None:
    conn = sqlite3.connect(workspace / "projects" / "p" / "knowledge.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert {os.path.basename(p) for (p,) in conn.execute("SELECT path FROM documents")} == expected
    finally:
        conn.close()


@pytest.fixture
def project(workspace):
    return Project.create("p", workspace)


def test_fifo_in_a_folder_fails_by_name_at_once_and_the_rest_is_kept(workspace, project, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "bees.md").write_text(GOOD)
    os.mkfifo(folder / "fifo.txt")  # no writer: a blocking open would wait forever
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "sock.md"))
    try:
        code, report, stderr, _ = ingest_cli(workspace, folder, timeout=60)
    finally:
        server.close()
    assert code == 1, stderr
    docs = by_name(report)
    assert docs["sock.md"]["status"] == "failed" and "a socket, not a regular file" in docs["sock.md"]["error"]
    assert docs["fifo.txt"]["status"] == "failed" and "named pipe" in docs["fifo.txt"]["error"]
    assert str(folder / "fifo.txt") in docs["fifo.txt"]["error"]
    assert docs["bees.md"]["status"] == "added"
    assert "Traceback" not in stderr
    assert_store_ok(workspace, {"bees.md"})


def test_link_to_dev_zero_is_refused_in_a_folder_and_as_a_device_when_passed(workspace, project, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "bees.md").write_text(GOOD)
    (folder / "zero.txt").symlink_to("/dev/zero")
    # The case from the issue: under a 1.5 GB address-space cap, reading /dev/zero without a limit died of a
    # MemoryError with nothing committed.
    code, report, stderr, _ = ingest_cli(workspace, folder, limit_as=1536 * MB)
    assert code == 1, stderr
    zero = by_name(report)["zero.txt"]
    assert zero["status"] == "failed" and "outside the folder" in zero["error"]
    assert zero["path"] == str(folder / "zero.txt")  # the link as found, not /dev/zero
    assert "Traceback" not in stderr
    assert_store_ok(workspace, {"bees.md"})

    code, report, stderr, _ = ingest_cli(workspace, folder / "zero.txt", limit_as=1536 * MB)
    assert code == 1 and "Traceback" not in stderr, stderr
    (failed,) = report["documents"]
    assert "character device" in failed["error"] and str(folder / "zero.txt") in failed["error"]


def test_links_are_followed_inside_the_folder_only_unless_passed_directly(workspace, project, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\n\nNot part of this folder.\n")
    folder = tmp_path / "d"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "bees.md").write_text(GOOD)
    (folder / "again.md").symlink_to(folder / "sub" / "bees.md")  # inside: the same document, read once
    (folder / "secret.md").symlink_to(outside / "secret.md")
    (folder / "out").symlink_to(outside, target_is_directory=True)
    code, report, stderr, _ = ingest_cli(workspace, folder)
    assert code == 1, stderr
    docs = report["documents"]
    failed = {d["path"]: d["error"] for d in docs if d["status"] == "failed"}
    assert set(failed) == {str(folder / "secret.md"), str(folder / "out")}
    assert all("outside the folder" in e for e in failed.values())
    assert [os.path.basename(d["path"]) for d in docs if d["status"] == "added"] == ["bees.md"]
    # Passed directly, the same link is the user's choice: it is read.
    code, report, stderr, _ = ingest_cli(workspace, folder / "secret.md")
    assert code == 0 and report["counts"]["added"] == 1, stderr
    assert_store_ok(workspace, {"bees.md", "secret.md"})


def test_proc_like_file_fails_by_name(workspace, project, tmp_path):
    link = tmp_path / "status.txt"
    link.symlink_to("/proc/self/status")  # a regular file to stat, size 0, content on read
    (tmp_path / "bees.md").write_text(GOOD)
    code, report, stderr, _ = ingest_cli(workspace, link, tmp_path / "bees.md")
    assert code == 1, stderr
    failed = next(d for d in report["documents"] if d["status"] == "failed")
    assert "/proc-like" in failed["error"] and str(link) in failed["error"]
    assert "Traceback" not in stderr
    assert_store_ok(workspace, {"bees.md"})


def test_size_cap_is_a_setting_checked_on_the_file(workspace, project, tmp_path):
    project.update_settings("knowledge", max_document_mb=1)
    (tmp_path / "big.txt").write_text("Bees make honey from nectar. " * 50_000)  # 1.4 MB
    (tmp_path / "bees.md").write_text(GOOD)
    code, report, stderr, _ = ingest_cli(workspace, tmp_path / "big.txt", tmp_path / "bees.md")
    assert code == 1, stderr
    big = by_name(report)["big.txt"]
    assert big["status"] == "failed" and "larger than the cap of 1 MB" in big["error"]
    assert "max_document_mb" in big["hint"]
    assert_store_ok(workspace, {"bees.md"})


# -- zip bombs ---------------------------------------------------------------------------------------------------


def rewrite_zip(src: Path, dest: Path, member: str, size: int) -> Path:
    """A copy of the zip `src` whose `member` (replaced or added) holds `size` bytes of repetitive XML, streamed
    through zipfile's writer a megabyte at a time (fast deflate: about 160 to 1, the weakest bomb)."""
    block = (b"<p>" + b"bomb " * 200 + b"</p>\n") * (MB // 1009)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zout:
        for info in zin.infolist():
            if info.filename != member:
                zout.writestr(info, zin.read(info))
        with zout.open(member, "w") as f:
            written = 0
            while written < size:
                f.write(block)
                written += len(block)
    return dest


def understate(path: Path, member: str, claimed: int) -> None:
    """Make the zip's headers (local and central) claim `claimed` unpacked bytes for `member`."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        local = z.getinfo(member).header_offset
    struct.pack_into("<I", data, local + 22, claimed)
    at = data.find(b"PK\x01\x02")
    while at != -1:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_len] == member.encode():
            struct.pack_into("<I", data, at + 24, claimed)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))


def test_zip_bombs_fail_by_name_with_bounded_memory(workspace, project, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    book = make_epub(src / "book.epub", [("a.xhtml", "<h1>Bees</h1><p>Bees make honey.</p>")])
    doc = make_docx(src / "doc.docx", [("h1", "Bees"), ("p", "Bees make honey.")])
    bombs = tmp_path / "bombs"
    bombs.mkdir()
    rewrite_zip(book, bombs / "container.epub", "META-INF/container.xml", 1024 * MB)
    rewrite_zip(book, bombs / "encryption.epub", "META-INF/encryption.xml", 1024 * MB)
    rewrite_zip(doc, bombs / "document.docx", "word/document.xml", 1024 * MB)
    # A chapter of 300 MB whose headers claim 100 MB: read whole, zipfile unpacked all of it before cutting.
    understate(rewrite_zip(book, bombs / "understated.epub", "OEBPS/text/a.xhtml", 300 * MB), "OEBPS/text/a.xhtml",
               100 * MB)  # fmt: skip
    (bombs / "bees.md").write_text(GOOD)
    assert all(p.stat().st_size < 20 * MB for p in bombs.iterdir())

    code, report, stderr, peak_mb = ingest_cli(workspace, bombs, timeout=300)
    assert code == 1, stderr
    docs = by_name(report)
    for name in ("container.epub", "encryption.epub", "document.docx", "understated.epub"):
        assert docs[name]["status"] == "failed" and str(bombs / name) in docs[name]["error"], docs[name]
    # Stopped by the ratio or by the cap, whichever comes first, naming the part.
    for name, part in (("container.epub", "container.xml"), ("encryption.epub", "encryption.xml"),
                       ("document.docx", "word/document.xml")):  # fmt: skip
        assert part in docs[name]["error"] and ("zip bomb" in docs[name]["error"] or "cap" in docs[name]["error"])
    assert docs["bees.md"]["status"] == "added"
    assert "Traceback" not in stderr
    assert peak_mb < 300, f"peak RSS {peak_mb:.0f} MB"
    print(f"peak RSS of ingest over the four bombs: {peak_mb:.0f} MB")
    assert_store_ok(workspace, {"bees.md"})


def test_archive_cap_counts_the_bytes_unpacked_not_the_header(workspace, project, tmp_path):
    """Under the ratio, a part bigger than the document cap still fails, whatever its header says."""
    project.update_settings("knowledge", max_document_mb=8, max_unpack_ratio=1000)
    src = make_epub(tmp_path / "book.epub", [("a.xhtml", "<h1>Bees</h1><p>Bees make honey.</p>")])
    bomb = rewrite_zip(src, tmp_path / "big.epub", "OEBPS/text/a.xhtml", 12 * MB)
    understate(bomb, "OEBPS/text/a.xhtml", 1000)
    (tmp_path / "bees.md").write_text(GOOD)
    fine = make_epub(tmp_path / "fine.epub", [("a.xhtml", "<h1>Wasps</h1><p>Wasps make paper.</p>")])
    code, report, stderr, _ = ingest_cli(workspace, bomb, fine, tmp_path / "bees.md")
    assert code == 1, stderr
    big = by_name(report)["big.epub"]
    # zipfile stops at the 1000 bytes claimed, then the checksum of what it unpacked disagrees.
    assert big["status"] == "failed" and "damaged EPUB" in big["error"], big
    assert by_name(report)["fine.epub"]["status"] == "added"

    honest = rewrite_zip(src, tmp_path / "honest.epub", "OEBPS/text/a.xhtml", 12 * MB)
    code, report, stderr, _ = ingest_cli(workspace, honest)
    assert code == 1 and "more than the cap of 8 MB" in report["documents"][0]["error"], stderr
    assert "Traceback" not in stderr


# -- output is text, not markup ------------------------------------------------------------------------------------


def test_paths_with_markup_and_escapes_are_shown_literally(cli, workspace, project, tmp_path):
    for name in ("[/]gone.md", "[bold red]gone[/].md", "\x1b[2Jgone\x07.md"):
        result = cli("ingest", "p", tmp_path / name)
        assert result.code == 2 and "Traceback" not in result.stderr, result.stderr
        assert "\x1b" not in result.stderr and "\x07" not in result.stderr
        shown = name.replace("\x1b", "\\x1b").replace("\x07", "\\x07")
        assert f"no such file or folder: {tmp_path / shown}" in result.stderr, result.stderr

    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "\x1b[31mred[bold].md").write_text(GOOD)
    (folder / "[").mkdir()  # so that a path holds `[/]`
    (folder / "[" / "]broken.pdf").write_bytes(b"%PDF-1.4 not really")
    result = cli("ingest", "p", folder)
    assert result.code == 1 and "Traceback" not in result.stderr, result.stderr
    assert "\x1b" not in result.stdout + result.stderr
    assert f"{folder}/\\x1b[31mred[bold].md" in result.stdout  # the listing of what was added
    assert f"failed: {folder}/[/]broken.pdf: " in result.stderr
    docs = cli("docs", "p")
    assert "\\x1b[31mred[bold].md" in docs.stdout and "\x1b" not in docs.stdout


def test_progress_bar_on_a_terminal_shows_names_as_text(monkeypatch):
    """On a terminal, the progress bar's detail (the file being read) was read as markup too: a MarkupError."""
    import io

    from ftstudio.cli import common
    from ftstudio.progress import Event

    screen = io.StringIO()
    monkeypatch.setattr(common, "err", common.TextConsole(file=screen, force_terminal=True, width=200))
    with common.progress_bar("Ingesting") as update:
        update(Event("ingest", 0, 2, "bees[/bold]\x1b[2J.md"))
    assert "bees[/bold]\\x1b[2J.md" in screen.getvalue()


def test_compression_ratio_stops_a_small_bomb_under_the_cap(workspace, project, tmp_path):
    src = make_epub(tmp_path / "book.epub", [("a.xhtml", "<h1>Bees</h1><p>Bees make honey.</p>")])
    bomb = tmp_path / "zeros.epub"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info))
        with zout.open("META-INF/encryption.xml", "w") as f:
            for _ in range(64):
                f.write(bytes(MB))  # 64 MB of zeros: about 1000 to 1, far under the 512 MB cap
    code, report, stderr, peak_mb = ingest_cli(workspace, bomb)
    assert code == 1, stderr
    (failed,) = report["documents"]
    assert "META-INF/encryption.xml unpacks to more than 100 times its compressed size" in failed["error"]
    assert "max_unpack_ratio" in failed["hint"] and peak_mb < 300
