//! The Python side of the benchmark (the MiniLM embedding of
//! `bench/embed.py` and the hnswlib baseline of
//! `bench/hnswlib_baseline.py`): a virtualenv under the data folder, made
//! with `python3 -m venv --system-site-packages` on first use (python3
//! itself where that fails), into which pip installs what is missing.
//! `VDB_BENCH_PYTHON` names an interpreter to use instead (then too pip
//! installs what is missing).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A script shipped beside this crate's sources.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// The interpreter to run the scripts with, making the virtualenv if need be.
pub fn interpreter(cache: &Path) -> Result<PathBuf, String> {
    if let Some(py) = std::env::var_os("VDB_BENCH_PYTHON") {
        return Ok(py.into());
    }
    let venv = cache.join("venv");
    let py = venv.join("bin").join("python");
    if py.exists() {
        return Ok(py);
    }
    std::fs::create_dir_all(cache).map_err(|e| e.to_string())?;
    eprintln!("making a Python virtualenv in {}", venv.display());
    let ok = Command::new("python3")
        .args(["-m", "venv", "--system-site-packages"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    if ok && py.exists() {
        return Ok(py);
    }
    let _ = std::fs::remove_dir_all(&venv);
    let works = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        eprintln!("no virtualenv (`python3 -m venv` failed): using python3 as it is");
        Ok("python3".into())
    } else {
        Err("no python3 on this machine".into())
    }
}

/// Whether `py` can import every module of `modules`.
fn imports(py: &Path, modules: &[&str]) -> bool {
    Command::new(py)
        .arg("-c")
        .arg(format!("import {}", modules.join(", ")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes `modules` importable by `py`, installing `packages` with pip if
/// they are not.
pub fn ensure(py: &Path, modules: &[&str], packages: &[&str]) -> Result<(), String> {
    if imports(py, modules) {
        return Ok(());
    }
    eprintln!(
        "installing {} with pip into {}",
        packages.join(" "),
        py.display()
    );
    let installed = Command::new(py)
        .args(["-m", "pip", "install", "--quiet", "--progress-bar", "off"])
        .args(packages)
        .status()
        .is_ok_and(|s| s.success());
    if installed && imports(py, modules) {
        Ok(())
    } else {
        Err(format!(
            "could not install {} with pip (no access to PyPI, or a build failed)",
            packages.join(" ")
        ))
    }
}
