//! A throwaway PostgreSQL 15 cluster for integration tests that need a
//! server of their own (binary protocol clients, crashes, replicas, several
//! servers), as opposed to the shared server of the `#[pg_test]`s.
//!
//! It uses the vdb installed into the system PostgreSQL, which
//! `cargo pgrx test` does before the integration tests run.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A running cluster, stopped and deleted on drop.
pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a server binary as the cluster owner (`postgres` when we are root,
/// because PostgreSQL refuses to run as root).
fn pg_command(program: &str) -> Command {
    let path = format!("{PG_BIN}/{program}");
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", &path]);
        cmd
    } else {
        Command::new(path)
    }
}

fn run(mut cmd: Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Cluster {
    /// A new directory owned by the cluster owner, and a free port.
    fn prepare(name: &str) -> Cluster {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("vdb-it-{name}-{}-{seq}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create cluster dir");
        if is_root() {
            run({
                let mut c = Command::new("chown");
                c.args(["postgres", dir.to_str().expect("utf-8 path")]);
                c
            });
        }
        Cluster {
            dir,
            port: free_port(),
        }
    }

    /// Appends this cluster's own settings and `conf` to `postgresql.conf`.
    fn configure(&self, conf: &[&str]) {
        let mut settings = vec![
            format!("port = {}", self.port),
            "listen_addresses = '127.0.0.1'".to_string(),
            format!("unix_socket_directories = '{}'", self.dir.display()),
            "fsync = off".to_string(),
        ];
        settings.extend(conf.iter().map(|s| s.to_string()));
        let conf_path = self.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).expect("read postgresql.conf");
        text.push('\n');
        text.push_str(&settings.join("\n"));
        text.push('\n');
        std::fs::write(&conf_path, text).expect("write postgresql.conf");
    }

    /// initdb + start, with extra `postgresql.conf` lines.
    pub fn start(name: &str, conf: &[&str]) -> Cluster {
        let cluster = Cluster::prepare(name);
        run({
            let mut c = pg_command("initdb");
            c.args([
                "-D",
                cluster.data().to_str().expect("utf-8 path"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ]);
            c
        });
        cluster.configure(conf);
        cluster.pg_ctl_start();
        cluster
    }

    /// A streaming standby of `primary` (pg_basebackup -R), started.
    pub fn standby_of(primary: &Cluster, name: &str, conf: &[&str]) -> Cluster {
        let cluster = Cluster::prepare(name);
        run({
            let mut c = pg_command("pg_basebackup");
            c.args([
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
            ])
            .arg(cluster.data())
            .args(["-R", "-X", "stream", "--no-sync"]);
            c
        });
        cluster.configure(conf);
        cluster.pg_ctl_start();
        cluster
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn pg_ctl_start(&self) {
        let mut c = pg_command("pg_ctl");
        c.args(["-D", self.data().to_str().expect("utf-8 path"), "-l"])
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "120", "start"]);
        let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n--- server log ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            self.log()
        );
    }

    pub fn stop(&self) {
        if self.data().join("postmaster.pid").exists() {
            let mut c = pg_command("pg_ctl");
            c.args([
                "-D",
                self.data().to_str().expect("utf-8 path"),
                "-m",
                "fast",
                "-w",
                "stop",
            ]);
            let _ = c.output();
        }
    }

    /// The postmaster's pid, from `postmaster.pid`.
    pub fn postmaster_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Crashes the server: SIGKILL to the postmaster and every backend at
    /// once (no shutdown checkpoint, no flushing), then waits for them all
    /// to be gone. `pg_ctl_start` afterwards runs crash recovery.
    pub fn crash(&self) {
        let Some(postmaster) = self.postmaster_pid() else {
            return;
        };
        let mut victims = children_of(postmaster);
        victims.push(postmaster);
        for &pid in &victims {
            // SAFETY: kill only sends a signal.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        // SAFETY: signal 0 only checks for existence.
        while victims
            .iter()
            .any(|&pid| unsafe { libc::kill(pid, 0) } == 0 && !is_zombie(pid))
        {
            assert!(Instant::now() < deadline, "server processes did not die");
            std::thread::sleep(Duration::from_millis(20));
        }
        // A killed postmaster can linger as a zombie when its parent (the
        // sandbox's init) never reaps it, and PostgreSQL takes a zombie's
        // pid in the lock file for a live server. Everything is dead now.
        let _ = std::fs::remove_file(self.data().join("postmaster.pid"));
        let _ = std::fs::remove_file(self.dir.join(format!(".s.PGSQL.{}.lock", self.port)));
    }

    /// A new connection to `dbname`, retried while the server starts.
    pub fn connect(&self, dbname: &str) -> postgres::Client {
        let conn = format!(
            "host=127.0.0.1 port={} user=postgres dbname={dbname}",
            self.port
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match postgres::Client::connect(&conn, postgres::NoTls) {
                Ok(client) => return client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("connect to {conn}: {e}"),
            }
        }
    }

    /// The server log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Pids whose parent is `parent` (from /proc).
fn children_of(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// A random vector of `dims` coordinates in [-1, 1), as vector text.
pub fn random_vector(rng: &mut impl rand::Rng, dims: usize) -> String {
    let coords: Vec<String> = (0..dims)
        .map(|_| format!("{:.4}", rng.gen_range(-1.0f32..1.0)))
        .collect();
    format!("[{}]", coords.join(","))
}

/// Fails clearly when vdb is not installed into the system PostgreSQL.
pub fn require_vdb() {
    assert!(
        Path::new("/usr/share/postgresql/15/extension/vdb.control").exists(),
        "vdb is not installed; run scripts/test.sh"
    );
}

/// The one value of a one-row, one-column query.
pub fn one<T: for<'a> postgres::types::FromSql<'a>>(
    client: &mut postgres::Client,
    query: &str,
) -> T {
    client.query_one(query, &[]).expect(query).get(0)
}

/// Recall@10 of `found` against the exact `truth`, query by query.
pub fn recall(found: &[Vec<i32>], truth: &[Vec<i32>]) -> f64 {
    let hits: usize = found
        .iter()
        .zip(truth)
        .map(|(f, t)| f.iter().filter(|id| t.contains(id)).count())
        .sum();
    hits as f64 / (truth.len() * 10) as f64
}

/// The plan of `query` as text; `options` as in `EXPLAIN (options)`.
pub fn explain(client: &mut postgres::Client, options: &str, query: &str) -> String {
    client
        .query(&format!("EXPLAIN ({options}) {query}"), &[])
        .expect("explain")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A cluster for write-path tests, with vdb created: the merge worker
/// sleeps (merges happen when a test says so), autovacuum is off, and so
/// is JIT (thousands of lookups at a high ef_search would each compile).
pub fn quiet_cluster(name: &str) -> Cluster {
    require_vdb();
    let cluster = Cluster::start(
        name,
        &[
            "vhnsw.merge_naptime = '1h'",
            "autovacuum = off",
            "jit = off",
        ],
    );
    cluster
        .connect("postgres")
        .batch_execute("CREATE EXTENSION vdb")
        .expect("create extension");
    cluster
}

/// Runs `statement` with the test build's `vhnsw.failpoint` set to
/// `failpoint`; it must fail. After a PANIC the server restarts by itself:
/// the fresh connection returned is made once recovery is done.
pub fn fail_at(
    cluster: &Cluster,
    c: &mut postgres::Client,
    failpoint: &str,
    statement: &str,
) -> postgres::Client {
    c.batch_execute(&format!("SET vhnsw.failpoint = '{failpoint}'"))
        .expect("set failpoint");
    let result = c.batch_execute(statement);
    assert!(result.is_err(), "{statement} with {failpoint} succeeded");
    if failpoint.ends_with(":panic") {
        // Let the postmaster notice and start recovery before reconnecting.
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut fresh = cluster.connect("postgres");
    fresh.batch_execute("RESET vhnsw.failpoint").expect("reset");
    fresh
}
