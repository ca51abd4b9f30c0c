"""The built wheel carries templates and migrations: install it fresh and run the demo."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs_the_demo(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dist.glob("onmodel-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "onmodel/templates/prompts/shot.j2" in names
    for template in ("judge.j2", "describe.j2", "view.j2"):
        assert f"onmodel/templates/prompts/{template}" in names
    assert any(n.startswith("onmodel/migrations/versions/0008") for n in names)
    assert "onmodel/migrations/env.py" in names
    assert any(n.startswith("onmodel/migrations/versions/0001") for n in names)
    assert "onmodel/data/models.yaml" in names
    for plugin in ("gemini", "flux", "comfyui"):  # each provider plugin's own tables
        assert f"onmodel/providers/{plugin}/models.yaml" in names
    assert "onmodel/providers/comfyui/workflows/ipadapter-sdxl.json" in names
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    declared = zipfile.ZipFile(wheel).read(metadata).decode()
    for extra, package in (("gemini", "google-genai"), ("team", "psycopg"), ("team", "boto3")):
        assert f"Provides-Extra: {extra}" in declared
        assert any(
            line.startswith(f"Requires-Dist: {package}") and f"extra == '{extra}'" in line
            for line in declared.splitlines()
        ), (extra, package)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    demo_dir = tmp_path / "demo"
    result = subprocess.run(
        [str(env_dir / "bin" / "onmodel"), "demo", "--dir", str(demo_dir)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    # four anchors, six shots of Mia, one of her cast and a retake's two takes
    assert "13 images" in result.stdout
    # the installed wheel checks offline: its demo's palette check catches the drifted take
    assert "picked #13" in result.stdout and "on model 100" in result.stdout
    assert (
        str(env_dir)
        in subprocess.run(
            [str(python), "-c", "import onmodel.resources as r; print(r.templates_dir())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert len(list((demo_dir / "blobs").rglob("*.png"))) == 13
    # installed without the gemini extra: its provider says what to install, the others list
    listed = subprocess.run(
        [str(env_dir / "bin" / "onmodel"), "providers", "--json"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ONMODEL_HOME": str(demo_dir)},
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    found = {each["name"]: each for each in json.loads(listed.stdout)}
    assert {"gemini", "flux", "comfyui", "openai-images", "preview"} <= set(found)
    assert found["gemini"]["configured"] is False
    assert "pip install 'onmodel[gemini]'" in found["gemini"]["detail"]
    models = subprocess.run(
        [str(env_dir / "bin" / "onmodel"), "models", "--json"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ONMODEL_HOME": str(demo_dir)},
        timeout=120,
    )
    names_listed = {row["name"] for row in json.loads(models.stdout)}
    assert {"gemini-3-pro-image", "flux-2-pro", "comfyui-workflow"} <= names_listed
