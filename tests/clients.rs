//! pgvector's Python client works against vdb unchanged: pgvector-python's
//! `Vector`, `HalfVector`, `Bit` and `SparseVector`, through psycopg 3 with
//! `register_vector`, round-trip exactly as text and as binary parameters
//! and results (all four combinations, so receive and send are each checked
//! against the other format); values that are not halves come back as the
//! nearest half; `<~>` and `hamming_distance` agree with Python's count; and
//! a vhnsw index on a halfvec column, queried with a binary `HalfVector`,
//! returns the nearest row. On a cluster of its own.
//!
//! The checks are `tests/clients/roundtrip.py`, the way an application
//! would write them. This test gives them a server and a virtualenv holding
//! exactly `tests/clients/requirements.txt`, made on first use (and again
//! when that file changes) under `target/clients-venv`. Only when the
//! package index cannot be reached to make it does the test print
//! `skipped: ...` and pass; every other failure fails it. The sparsevec part
//! skips itself while the type is not in this build.

mod support;

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::Cluster;

const REQUIREMENTS: &str = "tests/clients/requirements.txt";
const SCRIPT: &str = "tests/clients/roundtrip.py";

fn project() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Under `target/`: ignored by git, and `cargo clean` removes it with the
/// rest of the build (the test makes it again).
fn venv_dir() -> PathBuf {
    project().join("target/clients-venv")
}

/// The copy of the requirements the virtualenv was last installed from.
const STAMP: &str = "vdb-requirements.txt";

/// Prints to the terminal even when the test harness captures output, so a
/// skip is visible in a passing run.
fn notice(line: &str) {
    let _ = writeln!(std::io::stderr(), "clients: {line}");
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().map(|o| o.status.success()).unwrap_or(false)
}

/// What pip's output says about failing to connect to the package index,
/// if anything. pip reports an unreachable index as "no version found", the
/// same words as a wrong pin, so its connection warnings are what tell the
/// two apart.
fn unreachable_index(pip_output: &str) -> Option<&str> {
    const MARKERS: &[&str] = &[
        "Failed to establish a new connection",
        "Temporary failure in name resolution",
        "Name or service not known",
        "Network is unreachable",
        "No route to host",
        "Connection refused",
        "Connection reset by peer",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ProxyError",
        "Max retries exceeded",
    ];
    // From the marker to the end of urllib3's quoted message, e.g.
    // "Failed to establish a new connection: [Errno 111] Connection refused".
    MARKERS
        .iter()
        .find_map(|m| pip_output.find(m))
        .and_then(|start| pip_output[start..].split(['\'', '"', '\n']).next())
}

enum Python {
    /// The virtualenv's interpreter, with the pinned packages installed.
    Ready(PathBuf),
    /// Why the virtualenv could not be made: the package index is unreachable.
    Unreachable(String),
}

/// The virtualenv, made or brought up to date first if needed.
fn python_env() -> Python {
    let dir = venv_dir();
    let parent = dir.parent().expect("venv dir has a parent");
    std::fs::create_dir_all(parent).expect("create target/");
    // Another test process (a filtered run beside a full one) may be making
    // the same virtualenv: one makes it, the other waits and reuses it.
    let lock = File::create(parent.join("clients-venv.lock")).expect("create venv lock");
    // SAFETY: flock on a descriptor we own; closing `lock` releases it.
    let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(locked, 0, "flock: {}", std::io::Error::last_os_error());

    let python = dir.join("bin/python");
    let requirements = project().join(REQUIREMENTS);
    let wanted = std::fs::read_to_string(&requirements).expect("read requirements.txt");
    let imports = || {
        let probe = "import numpy, psycopg, pgvector.psycopg";
        succeeds(Command::new(&python).args(["-c", probe]))
    };
    let stamp = dir.join(STAMP);
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) && imports() {
        return Python::Ready(python);
    }

    // No virtualenv yet, or one whose interpreter is gone (python3 was
    // upgraded or removed): make a fresh one. venv needs no network.
    if !succeeds(Command::new(&python).args(["-c", "pass"])) {
        let out = Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&dir)
            .output()
            .expect("run python3 (apt-get install python3)");
        assert!(
            out.status.success(),
            "python3 -m venv {} failed (on Debian: apt-get install python3-venv):\n{}",
            dir.display(),
            output_text(&out)
        );
    }
    // Installs the pins over whatever is there: upgrades and downgrades
    // alike. The stamp goes first, so an interrupted install is redone.
    let _ = std::fs::remove_file(&stamp);
    let out = Command::new(&python)
        .args(["-m", "pip", "install", "--no-input", "-r"])
        .arg(&requirements)
        // Unreachable should mean a skip within seconds, not minutes of
        // retries (pip's default is 5 retries with back-off).
        .args(["--retries", "2", "--timeout", "30"])
        .arg("--disable-pip-version-check")
        .output()
        .expect("run pip");
    if !out.status.success() {
        let log = output_text(&out);
        if let Some(line) = unreachable_index(&log) {
            return Python::Unreachable(format!("cannot reach the package index ({line})"));
        }
        panic!("pip install -r {REQUIREMENTS} failed:\n{log}");
    }
    assert!(imports(), "{REQUIREMENTS} installed, but does not import");
    std::fs::write(&stamp, wanted).expect("write venv stamp");
    Python::Ready(python)
}

#[test]
fn pgvector_python_round_trips_through_psycopg() {
    support::require_vdb();
    let python = match python_env() {
        Python::Ready(python) => python,
        Python::Unreachable(reason) => {
            notice(&format!("skipped: {reason}"));
            return;
        }
    };

    let cluster = Cluster::start("clients", &[]);
    cluster
        .connect("postgres")
        .batch_execute("CREATE EXTENSION vdb")
        .expect("create extension");
    let conninfo = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        cluster.port
    );
    let out = Command::new(&python)
        .arg(project().join(SCRIPT))
        .arg(&conninfo)
        // Only the virtualenv's packages: nothing from the caller's
        // PYTHONPATH, and no __pycache__ left in the source tree.
        .env_remove("PYTHONPATH")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run roundtrip.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{SCRIPT} failed ({}):\n{stdout}{}\n--- server log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        cluster.log()
    );
    println!("{stdout}");
    for line in stdout.lines().filter(|l| l.starts_with("skipped:")) {
        notice(line);
    }
    // The script ends with its versions line only when every check ran.
    assert!(
        stdout.lines().any(|l| l.starts_with("ok: pgvector ")),
        "{SCRIPT} exited 0 without finishing:\n{stdout}"
    );
}
