"""The workspace contract: project names, project.toml through typed settings, `init` through the real CLI."""

from __future__ import annotations

import pytest

from ftstudio.errors import BadInput, NotFound
from ftstudio.project import Project, list_projects


def test_create_lays_out_the_workspace(workspace):
    project = Project.create("math-tutor", workspace)
    assert project.dir == workspace / "projects" / "math-tutor"
    for sub in ("data", "runs", "exports"):
        assert (project.dir / sub).is_dir()
    settings = Project.open("math-tutor", workspace).settings()
    assert settings.knowledge.chunk_tokens == 512 and settings.knowledge.overlap == 64
    assert list_projects(workspace) == ["math-tutor"]


@pytest.mark.parametrize(
    "name", ["../x", "a/b", ".hidden", "", "..", "a b", "x" * 65, "név", "--help", "--root", "-x", "-"]
)
def test_unsafe_names_are_refused_and_nothing_is_created(workspace, name):
    with pytest.raises(BadInput, match="not a valid project name"):
        Project.create(name, workspace)
    assert not (workspace / "projects").exists() or not any((workspace / "projects").iterdir())


def test_settings_round_trip_and_every_problem_reported(workspace):
    project = Project.create("p", workspace)
    project.update_settings("knowledge", chunk_tokens=256, overlap=32)
    assert project.settings().knowledge.chunk_tokens == 256
    project.settings_path.write_text('[knowledge]\nchunk_tokens = 4\noverlap = "x"\n[nonsense]\na = 1\n')
    with pytest.raises(BadInput) as info:
        project.settings()
    message = str(info.value)
    assert "knowledge.chunk_tokens" in message and "knowledge.overlap" in message and "nonsense" in message


def test_invalid_update_saves_nothing(workspace):
    project = Project.create("p", workspace)
    before = project.settings_path.read_text()
    with pytest.raises(BadInput, match="overlap"):
        project.update_settings("knowledge", overlap=600)
    assert project.settings_path.read_text() == before


def test_open_missing_project_says_how_to_create_it(workspace):
    with pytest.raises(NotFound) as info:
        Project.open("nope", workspace)
    assert "ftstudio init nope" in str(info.value)


def test_cli_init_and_bad_name(cli, workspace):
    ok = cli("init", "demo", "--json")
    assert ok.code == 0, ok.stderr
    assert ok.json()["name"] == "demo"
    assert (workspace / "projects" / "demo" / "project.toml").is_file()

    again = cli("init", "demo")
    assert again.code == 2 and "already exists" in again.stderr

    for option_like in ("--help", "--root"):  # after `--`, the name reaches init, which refuses it
        hostile = cli("init", "--json", "--", option_like)
        assert hostile.code == 2 and "not a valid project name" in hostile.json()["error"], hostile.stderr
        assert not (workspace / "projects" / option_like).exists()
    assert "Traceback" not in hostile.stderr

    bad = cli("init", "../x", "--json")
    assert bad.code == 2
    assert "not a valid project name" in bad.json()["error"]
    assert not (workspace / "x").exists()
