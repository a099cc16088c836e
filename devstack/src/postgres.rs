//! A local PostgreSQL for devstack: a cluster under `.devstack/pgdata` (git-ignored, kept
//! between runs), started on a fixed loopback port and stopped when devstack exits.
//! initdb and postgres refuse to run as root; as root they run as the `postgres` user.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

/// The default port of devstack's cluster (`DEVSTACK_PG_PORT` changes it).
pub const DEFAULT_PORT: u16 = 54329;
/// The database devstack creates and uses.
pub const DATABASE: &str = "salesagent";

/// A cluster devstack started and will stop.
#[derive(Debug)]
pub struct LocalPostgres {
    bin: PathBuf,
    data: PathBuf,
    /// The URL of devstack's database.
    pub url: String,
    started_here: bool,
}

impl LocalPostgres {
    /// Initialises the cluster on first use, starts it unless it already runs, and makes
    /// sure the `salesagent` database exists.
    pub fn start(state_dir: &Path, port: u16) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let root = state_dir.join("postgres");
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        // The server resolves paths from its own working directory: make them absolute.
        let root = root
            .canonicalize()
            .with_context(|| format!("resolving {}", root.display()))?;
        let data = root.join("pgdata");
        let as_root = is_root();
        if as_root {
            run(
                Command::new("chown").args(["-R", "postgres:"]).arg(&root),
                "chown",
            )?;
        }
        if !data.join("PG_VERSION").exists() {
            tracing::info!(dir = %data.display(), "initialising a local PostgreSQL cluster");
            run(
                owner_command(&bin.join("initdb"), as_root)
                    .arg("-D")
                    .arg(&data)
                    .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]),
                "initdb",
            )?;
        }
        let running = owner_command(&bin.join("pg_ctl"), as_root)
            .arg("status")
            .arg("-D")
            .arg(&data)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !running {
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1",
                data.display()
            );
            let log = root.join("server.log");
            run(
                owner_command(&bin.join("pg_ctl"), as_root)
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(&log)
                    .args(["-w", "-t", "60", "start", "-o", &options]),
                "pg_ctl start",
            )
            .with_context(|| {
                // The usual cause is another PostgreSQL (another devstack) on the port; the
                // log says so, pg_ctl's own message does not.
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let last: Vec<&str> = tail.lines().rev().take(5).collect();
                format!(
                    "devstack's PostgreSQL did not start on port {port} (another one there? \
                     set DEVSTACK_PG_PORT to a free port); its log, {}, ends with:\n{}",
                    log.display(),
                    last.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })?;
        }
        let admin_url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        create_database_if_missing(&bin, &admin_url)?;
        Ok(Self {
            bin,
            data,
            url: format!("postgres://postgres@127.0.0.1:{port}/{DATABASE}"),
            started_here: !running,
        })
    }

    /// Stops the cluster if this run started it.
    pub fn stop(&self) {
        if !self.started_here {
            return;
        }
        let stopped = owner_command(&self.bin.join("pg_ctl"), is_root())
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .output();
        if let Err(error) = stopped {
            tracing::warn!(%error, "could not stop the local PostgreSQL");
        }
    }
}

fn create_database_if_missing(bin: &Path, admin_url: &str) -> anyhow::Result<()> {
    let psql = bin.join("psql");
    let psql = if psql.exists() {
        psql
    } else {
        PathBuf::from("psql")
    };
    let exists = Command::new(&psql)
        .arg(admin_url)
        .args([
            "-tAc",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"),
        ])
        .output()
        .context("running psql")?;
    if String::from_utf8_lossy(&exists.stdout).trim() != "1" {
        run(
            Command::new(&psql)
                .arg(admin_url)
                .args(["-c", &format!("CREATE DATABASE {DATABASE}")]),
            "create database",
        )?;
    }
    Ok(())
}

fn bin_dir() -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    candidates.sort();
    if let Some(newest) = candidates.pop() {
        return Ok(newest);
    }
    let which = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()?;
    let path = String::from_utf8_lossy(&which.stdout).trim().to_owned();
    match Path::new(&path).parent() {
        Some(dir) if !path.is_empty() => Ok(dir.to_path_buf()),
        _ => bail!(
            "PostgreSQL is not installed (no initdb found): install the `postgresql` package \
             or set DATABASE_URL"
        ),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn owner_command(program: &Path, as_root: bool) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
