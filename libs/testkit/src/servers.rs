//! Private Redis and PostgreSQL servers for fault tests: started on free ports in a temporary
//! directory, frozen, restarted and stopped at will, and gone with the value. They never touch
//! the machine's own servers. Each constructor returns `None` (the caller skips, saying why)
//! where the server's binaries are absent.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

fn wait_port(port: u16, up: bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let open = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if open == up {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A `redis-server` of this test's own.
pub struct PrivateRedis {
    port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for PrivateRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateRedis").field("port", &self.port).finish()
    }
}

impl PrivateRedis {
    /// Starts one, or `None` when `redis-server` is not installed.
    pub fn start() -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let mut me = Self { port: free_port(), child: None, _dir: dir };
        me.spawn().then_some(me)
    }

    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .current_dir(self._dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => {
                self.child = Some(child);
                wait_port(self.port, true, Duration::from_secs(10))
            }
            Err(_) => false,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: rustix::process::Signal) {
        if let Some(child) = &self.child {
            let _ = rustix::process::kill_process(rustix::process::Pid::from_child(child), signal);
        }
    }

    /// Stops it answering without closing anything (SIGSTOP): calls hang until their timeout.
    pub fn freeze(&self) {
        self.signal(rustix::process::Signal::STOP);
    }

    pub fn thaw(&self) {
        self.signal(rustix::process::Signal::CONT);
    }

    /// Kills it (its data is lost, as after a crash).
    pub fn kill(&mut self) {
        self.thaw();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        wait_port(self.port, false, Duration::from_secs(10));
    }

    /// Starts an empty one on the same port after [`PrivateRedis::kill`].
    pub fn start_again(&mut self) -> bool {
        self.spawn()
    }

    /// Kills it and starts an empty one on the same port.
    pub fn restart(&mut self) -> bool {
        self.kill();
        self.spawn()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL cluster of this test's own (`initdb` in a temporary directory, trust auth).
pub struct PrivatePostgres {
    port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_postgres: bool,
}

impl std::fmt::Debug for PrivatePostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivatePostgres").field("port", &self.port).finish()
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb` and `pg_ctl`.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").is_file() && p.join("pg_ctl").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

impl PrivatePostgres {
    /// Creates and starts a cluster, or `None` when PostgreSQL's server binaries are absent.
    pub fn start() -> Option<Self> {
        let bin = postgres_bin()?;
        let dir = tempfile::tempdir().ok()?;
        // PostgreSQL refuses to run as root: then the cluster belongs to the postgres user.
        let as_postgres = rustix::process::geteuid().is_root();
        if as_postgres {
            let (uid, gid) = ids_of("postgres")?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).ok()?;
        }
        let me = Self { port: free_port(), bin, dir, as_postgres };
        let data = me.data().to_string_lossy().into_owned();
        me.run("initdb", &["--auth=trust", "--no-sync", "-U", "postgres", "-D", &data]).then_some(())?;
        me.ctl("start").then_some(me)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) -> bool {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command
            .args(args)
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn ctl(&self, action: &str) -> bool {
        let data = self.data().to_string_lossy().into_owned();
        let log = self.dir.path().join("postgres.log").to_string_lossy().into_owned();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let mut args = vec!["-D", data.as_str(), "-l", log.as_str(), "-w", "-t", "30"];
        if action != "stop" {
            args.extend(["-o", options.as_str()]);
        }
        args.push(action);
        if action != "start" {
            args.extend(["-m", "fast"]);
        }
        self.run("pg_ctl", &args)
    }

    /// A URL of database `name` on this cluster (`postgres` exists from the start).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name`.
    pub async fn create_database(&self, name: &str) -> Result<(), sqlx::Error> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
        conn.close().await
    }

    /// Restarts the server (fast shutdown: open connections are cut with 57P01).
    pub fn restart(&self) -> bool {
        self.ctl("restart")
    }

    pub fn stop(&self) -> bool {
        self.ctl("stop")
    }

    pub fn start_again(&self) -> bool {
        self.ctl("start")
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data().to_string_lossy().into_owned();
        self.run("pg_ctl", &["-D", &data, "-w", "-t", "10", "stop", "-m", "immediate"]);
    }
}

/// The uid and gid of a system user, from /etc/passwd.
fn ids_of(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let fields: Vec<&str> = passwd.lines().find(|l| l.split(':').next() == Some(user))?.split(':').collect();
    Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}
