"""The wheel works on its own: built from this tree, installed in a fresh virtual environment and
run from a folder that is not the checkout, the commands find every resource they need inside
the package (vocabularies, attribute files, the tiny CLIP config, the configs users copy)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(REPO)],
                   check=True, capture_output=True, text=True, cwd=REPO)
    (whl,) = out.glob("vidssl-*.whl")
    return whl


def test_wheel_holds_the_shipped_resources(wheel):
    import vidssl

    names = set(zipfile.ZipFile(wheel).namelist())
    assert wheel.name.startswith(f"vidssl-{vidssl.__version__}-")
    for rel in ("vidssl/configs/demo.yaml", "vidssl/configs/pretrain/tclr_synthetic.yaml",
                "vidssl/configs/track/unitrack.yaml", "vidssl/resources/vocabularies/ucf101.txt",
                "vidssl/resources/attributes/ucf101.json", "vidssl/resources/open_clip/vidssl-tiny-clip.json"):
        assert rel in names, rel
    shipped = {p.relative_to(REPO / "configs").as_posix() for p in (REPO / "configs").rglob("*.yaml")}
    assert {f"vidssl/configs/{s}" for s in shipped} <= names, "a config in configs/ is not packaged"
    assert not any(n.startswith(("tests/", "configs/", "tools/")) for n in names)


@pytest.mark.slow
def test_wheel_installed_in_a_fresh_environment_runs(wheel, tmp_path):
    """A new venv gets the wheel (its dependencies are lent from this environment through a
    .pth file: nothing is downloaded); the commands run from an empty folder."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "_lent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                    "--disable-pip-version-check", str(wheel)], check=True, capture_output=True, text=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["VIDSSL_CACHE_DIR"] = str(tmp_path / "cache")

    def vidssl(*args: str) -> str:
        proc = subprocess.run([str(venv / "bin" / "vidssl"), *args], cwd=work, env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"vidssl {' '.join(args)}: {proc.stderr[-2000:]}"
        return proc.stdout

    where = subprocess.run([str(py), "-c", "import vidssl; print(vidssl.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(site), f"vidssl imported from {where}, not the wheel"
    import vidssl as here

    assert vidssl("--version").strip() == f"vidssl {here.__version__}"
    assert "--loader-only" in vidssl("demo", "--help")
    vidssl("make-synthetic", "--out", "data", "--quiet", "--workers", "1", "num_classes=2",
           "groups_per_class=3", "clips_per_group=1", "num_frames=16", "size=32", "tracking_sequences=0")
    assert (work / "data" / "splits").is_dir()
    assert "encode" in vidssl("concepts", "--help")
    out = vidssl("concepts", "encode", "--vocabulary", "ucf101", "--model", "vidssl-tiny-clip",
                 "--pretrained", "none")
    assert "101" in out
    assert "pretrain/tclr_synthetic.yaml" in vidssl("configs")
    assert "method:" in vidssl("configs", "pretrain/tclr_synthetic")
