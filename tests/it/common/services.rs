//! PostgreSQL and Redis instances a test owns: started on free ports in
//! temporary folders, stopped and started again by the test, and stopped
//! when dropped. Chaos tests restart them freely without touching the
//! machine's shared services or any other test.
//!
//! PostgreSQL comes from `initdb`/`pg_ctl` on `PATH`, else from the newest
//! `/usr/lib/postgresql/VERSION/bin` (Debian's layout); Redis from
//! `redis-server` on `PATH`. PostgreSQL refuses to run as root, so when the
//! tests run as root its commands run as the `postgres` user (through
//! `runuser`) on a folder that user owns.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it next).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Where a PostgreSQL program lives: on `PATH`, else under
/// `/usr/lib/postgresql/*/bin` (the newest version first).
fn pg_program(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if let Some(p) = on_path {
        return p;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin").join(name))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|p| {
        p.ancestors()
            .nth(2)
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .unwrap_or_else(|| panic!("`{name}` is neither on PATH nor under /usr/lib/postgresql"))
}

/// A PostgreSQL server of the test's own: its data folder, port and Unix
/// socket folder all in one temporary folder.
pub struct Postgres {
    /// Holds the data folder (`data`), the socket and the server log.
    dir: tempfile::TempDir,
    port: u16,
    pg_ctl: PathBuf,
    /// Commands run as the `postgres` user (the tests run as root).
    as_postgres: bool,
    running: bool,
}

impl Postgres {
    /// `initdb` on a fresh folder (trust auth, superuser `postgres`), then
    /// starts the server on a free port.
    pub async fn start() -> Self {
        let as_postgres = rustix::process::geteuid().is_root();
        let dir = tempfile::tempdir().expect("tempdir");
        if as_postgres {
            // The server's own user must own its folder.
            let ok = std::process::Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .expect("run chown");
            assert!(ok.success(), "chown postgres {}", dir.path().display());
        }
        let pg = Self {
            port: free_port(),
            pg_ctl: pg_program("pg_ctl"),
            as_postgres,
            running: false,
            dir,
        };
        let initdb = pg_program("initdb");
        let data = pg.data();
        let out = pg
            .command(&initdb)
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .output()
            .await
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = pg;
        pg.start_again().await;
        pg
    }

    /// A `Command` for `program`, as the `postgres` user when needed.
    fn command(&self, program: &Path) -> tokio::process::Command {
        let mut cmd = if self.as_postgres {
            let mut c = tokio::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            tokio::process::Command::new(program)
        };
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        cmd
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The URL of the server's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again), on the same port and data, and waits until
    /// it accepts connections.
    pub async fn start_again(&mut self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .command(&self.pg_ctl)
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "30", "-o", &options, "start"])
            .output()
            .await
            .expect("run pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
        self.running = true;
    }

    /// Stops the server at once (`-m immediate`: connections are cut, as
    /// when the database host fails).
    pub async fn stop(&mut self) {
        let out = self
            .command(&self.pg_ctl)
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "immediate", "stop"])
            .output()
            .await
            .expect("run pg_ctl stop");
        assert!(
            out.status.success(),
            "pg_ctl stop failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = false;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        let data = self.data();
        let mut cmd = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&self.pg_ctl);
            c
        } else {
            std::process::Command::new(&self.pg_ctl)
        };
        let _ = cmd
            .arg("-D")
            .arg(data)
            .args(["-w", "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A `redis-server` of the test's own on a free port, with no persistence.
pub struct Redis {
    port: u16,
    child: Option<tokio::process::Child>,
}

impl Redis {
    pub async fn start() -> Self {
        let mut r = Self {
            port: free_port(),
            child: None,
        };
        r.start_again().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits for its "Ready
    /// to accept connections" line.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let mut child = tokio::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server (is it on PATH?)");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut seen = Vec::new();
        let ready = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(l)) = lines.next_line().await {
                let ready = l.contains("Ready to accept connections");
                seen.push(l);
                if ready {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            matches!(ready, Ok(true)),
            "redis-server on port {} did not start:\n{}",
            self.port,
            seen.join("\n")
        );
        // Keeps draining its log so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// A connection to the server (for inspecting keys).
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test's redis")
    }
}
