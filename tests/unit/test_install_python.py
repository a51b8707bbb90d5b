"""packaging/install-python (the spec's %install of the Python package, for RHEL 9 whose setuptools 53 cannot
read pyproject.toml's [project]): its TOML-subset reader agrees with tomllib on pyproject.toml; it lays down
every module of the hadaemon packages, the package data, a dist-info and one working wrapper per console script."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "packaging" / "install-python"


def load():
    loader = importlib.machinery.SourceFileLoader("install_python", str(SCRIPT))
    spec = importlib.util.spec_from_loader("install_python", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def test_subset_reader_agrees_with_tomllib_on_pyproject():
    tomllib = pytest.importorskip("tomllib")  # the venv's Python is 3.11: always there in CI
    text = (REPO / "pyproject.toml").read_text()
    assert load().parse_toml_subset(text) == tomllib.loads(text)


def test_subset_reader_names_the_line_it_does_not_understand():
    mod = load()
    with pytest.raises(mod.TomlSubsetError, match=r"^x.toml:3: value not understood"):
        mod.parse_toml_subset('[a]\nb = "c"\nd = 1979-05-27\n', "x.toml")


def test_install_lays_out_the_package_like_pip(tmp_path):
    site = "/usr/lib/python3.9/site-packages"
    cp = subprocess.run([sys.executable, str(SCRIPT), "--root", str(tmp_path), "--sitelib", site, str(REPO)],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    root = tmp_path / site.lstrip("/")
    # what setuptools' packages.find + package-data take from the tree on disk: the modules of every directory
    # that is a package all the way up, and hadaemon/web/static/*
    def in_package(path: Path) -> bool:
        dirs = [REPO / d for d in path.relative_to(REPO).parents if d != Path(".")]
        return all((d / "__init__.py").exists() for d in dirs)
    expected = {str(f.relative_to(REPO)) for f in (REPO / "hadaemon").rglob("*.py")
                if "__pycache__" not in f.parts and in_package(f)}
    expected |= {str(f.relative_to(REPO)) for f in (REPO / "hadaemon/web/static").iterdir() if f.is_file()}
    got = {str(p.relative_to(root)) for p in (root / "hadaemon").rglob("*") if p.is_file()}
    assert got == expected, (sorted(got - expected)[:10], sorted(expected - got)[:10])
    info = root / "hadaemon-0.1.0.dist-info"
    meta = (info / "METADATA").read_text()
    assert "Name: hadaemon\n" in meta and "Requires-Dist: dbus-next>=0.2.3\n" in meta
    record = (info / "RECORD").read_text().splitlines()
    assert "hadaemon/__init__.py" in {line.split(",")[0] for line in record}
    # every console script of pyproject.toml, with the system shebang, runs from the laid-out tree
    from hadaemon.testing.nspawn import console_scripts
    scripts = console_scripts()
    assert {p.name for p in (tmp_path / "usr/bin").iterdir()} == set(scripts)
    hactl = tmp_path / "usr/bin/hactl"
    assert hactl.read_text().startswith("#!/usr/bin/python3\n") and os.access(hactl, os.X_OK)
    env = dict(os.environ, PYTHONPATH=str(root))
    cp = subprocess.run([sys.executable, str(hactl), "--help"], capture_output=True, text=True, env=env, timeout=60,
                        cwd=tmp_path)
    assert cp.returncode == 0 and "usage: hactl" in cp.stdout, cp.stderr
    assert (info / "entry_points.txt").read_text().count(" = hadaemon.") == len(scripts)


def test_isolated_script_runs_without_site_from_its_sitelib(tmp_path):
    """--isolated hactl: #!PYTHON -IS (no site, no PYTHONPATH); the wrapper finds the package in SITELIB."""
    site, bindir = tmp_path / "site", tmp_path / "bin"
    cp = subprocess.run([sys.executable, str(SCRIPT), "--root", "/", "--sitelib", str(site), "--bindir", str(bindir),
                         "--shebang", sys.executable, "--isolated", "hactl", str(REPO)],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    hactl = bindir / "hactl"
    assert hactl.read_text().splitlines()[0] == f"#!{sys.executable} -IS"
    assert (bindir / "ha-heartbeat").read_text().splitlines()[0] == f"#!{sys.executable}"
    cib = tmp_path / "cib.xml"
    cib.write_text('<cib validate-with="pacemaker-3.0" have-quorum="1"><configuration><crm_config><cluster_property_set id="o">'
                   '<nvpair id="o1" name="stonith-enabled" value="false"/></cluster_property_set></crm_config><nodes>'
                   '<node id="1" uname="node1"/></nodes><resources><primitive id="r" class="ocf" '
                   'provider="heartbeat" type="Dummy"/></resources><constraints/></configuration>'
                   '<status><node_state id="1" uname="node1" in_ccm="true" crmd="online" join="member" '
                   'expected="member"/></status></cib>')
    env = dict(os.environ, PYTHONPATH="/nonexistent")  # ignored (-I): the package comes from --sitelib
    cp = subprocess.run([str(hactl), "simulate", str(cib)], capture_output=True, text=True, env=env, timeout=60,
                        cwd=tmp_path)
    summary = [line.split() for line in cp.stdout.splitlines()]
    assert cp.returncode == 0 and ["*", "Start", "r", "(", "node1", ")"] in summary, cp.stdout + cp.stderr
    cp = subprocess.run([sys.executable, str(SCRIPT), "--root", "/", "--sitelib", str(site), "--bindir", str(bindir),
                         "--isolated", "nosuch", str(REPO)], capture_output=True, text=True, timeout=120)
    assert cp.returncode != 0 and "--isolated nosuch: not in [project.scripts]" in cp.stderr
