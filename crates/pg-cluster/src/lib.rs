//! A throwaway PostgreSQL server in a temporary folder, for `shop`'s tests
//! and the benchmark of its PostgreSQL back end (a dev-dependency, no part
//! of the product): `initdb`, then `pg_ctl start` listening on a Unix
//! socket in the folder (no port to race another test for) or on a
//! loopback port, and `pg_ctl stop` when dropped. The programs
//! come from Debian's `postgresql` package, which `scripts/setup` installs.
//! PostgreSQL refuses to run as root, so as root they run as the
//! `postgres` user the package makes.
//!
//! `initdb` takes about a second, more than the rest of a test's set-up: it
//! runs once per PostgreSQL version (and user), into a template folder in
//! the temporary folder (`shop-pg-template-…`), and each server starts from
//! a copy of it, as PostgreSQL's own test suites do.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running server and its folder, both gone when dropped.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    port: Option<u16>,
    /// The server's options (`pg_ctl -o`), to start it again.
    options: String,
}

impl Cluster {
    /// Starts a server on a Unix socket; `durable: false` turns off fsync
    /// (tests check logic, not the disk).
    pub fn start(durable: bool) -> anyhow::Result<Cluster> {
        Cluster::start_on(None, durable)
    }

    /// Starts a server that also listens on `127.0.0.1:port`.
    pub fn start_on(port: Option<u16>, durable: bool) -> anyhow::Result<Cluster> {
        Cluster::start_with(port, durable, None)
    }

    /// Starts a server on `127.0.0.1:port` that offers TLS with the
    /// certificate `cert` and its private key `key` (both PEM).
    pub fn start_tls(port: u16, cert: &str, key: &str) -> anyhow::Result<Cluster> {
        Cluster::start_with(Some(port), false, Some((cert, key)))
    }

    fn start_with(
        port: Option<u16>,
        durable: bool,
        tls: Option<(&str, &str)>,
    ) -> anyhow::Result<Cluster> {
        let bin = programs()?;
        let dir = std::env::temp_dir().join(format!("shop-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir)?;
        let as_postgres = is_root();
        let mut cluster = Cluster {
            dir,
            bin,
            as_postgres,
            port,
            options: String::new(),
        };
        if as_postgres {
            give_to_postgres(&cluster.dir)?;
        }
        let template = template(&cluster.bin, as_postgres)?;
        let status = Command::new("cp")
            .arg("-a")
            .arg(template.join("data"))
            .arg(cluster.dir.join("data"))
            .status()?;
        anyhow::ensure!(status.success(), "cannot copy `{}`", template.display());
        let mut options = format!(
            "-k {} -c listen_addresses='{}' -c max_connections=200",
            cluster.dir.display(),
            if port.is_some() { "127.0.0.1" } else { "" }
        );
        if let Some(port) = port {
            options.push_str(&format!(" -p {port}"));
        }
        if !durable {
            options.push_str(" -c fsync=off -c full_page_writes=off");
        }
        if let Some((cert, key)) = tls {
            // The key the server's own and no one else's, or it will not start.
            let cert_file = cluster.dir.join("server.crt");
            let key_file = cluster.dir.join("server.key");
            std::fs::write(&cert_file, cert)?;
            std::fs::write(&key_file, key)?;
            std::fs::set_permissions(
                &key_file,
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )?;
            if as_postgres {
                give_to_postgres(&cert_file)?;
                give_to_postgres(&key_file)?;
            }
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert_file.display(),
                key_file.display()
            ));
        }
        cluster.options = options;
        cluster.start_again()?;
        Ok(cluster)
    }

    /// Stops the server at once, as a crash or a failover would, keeping
    /// its data.
    pub fn stop(&self) -> anyhow::Result<()> {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        )
    }

    /// Starts the server (again), with the same data and options.
    pub fn start_again(&self) -> anyhow::Result<()> {
        let log = self.dir.join("log").display().to_string();
        if let Err(error) = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &self.options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        ) {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            anyhow::bail!("{error}\n{log}");
        }
        Ok(())
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        run(&self.bin, self.as_postgres, &self.dir, program, args)
    }

    /// A connection string for `database` on the Unix socket.
    pub fn url(&self, database: &str) -> String {
        let port = self
            .port
            .map(|port| format!(" port={port}"))
            .unwrap_or_default();
        format!(
            "host={} user=postgres dbname={database}{port}",
            self.dir.display()
        )
    }

    /// A `postgres://` URL for `database` on the loopback port.
    pub fn tcp_url(&self, database: &str) -> Option<String> {
        self.port
            .map(|port| format!("postgres://postgres@127.0.0.1:{port}/{database}"))
    }

    /// Makes an empty database.
    pub fn create_database(&self, name: &str) -> anyhow::Result<()> {
        let port = self
            .port
            .map(|port| port.to_string())
            .unwrap_or("5432".into());
        let output = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                &self.dir.display().to_string(),
                "-p",
                &port,
                "-U",
                "postgres",
                name,
            ])
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "`createdb` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(())
    }

    /// The folder the server's socket is in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `program` of `bin` in `dir`, as `postgres` if `as_postgres`.
fn run(
    bin: &Path,
    as_postgres: bool,
    dir: &Path,
    program: &str,
    args: &[&str],
) -> anyhow::Result<()> {
    let path = bin.join(program);
    let mut command = if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(&path);
        command
    } else {
        Command::new(&path)
    };
    let output = command.args(args).current_dir(dir).output()?;
    anyhow::ensure!(
        output.status.success(),
        "`{program}` failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// The folder whose `data` an `initdb` of `bin` made, made on first use.
/// It is built under a name of its own and renamed into place, so a
/// template is whole or absent, and of two tests making it at once one
/// keeps its own and the other removes its.
fn template(bin: &Path, as_postgres: bool) -> anyhow::Result<PathBuf> {
    use sha2::Digest;
    // The version is in Debian's path (`/usr/lib/postgresql/15/bin`); a
    // digest of the path keeps one template for each installation.
    let digest = sha2::Sha256::digest(bin.as_os_str().as_encoded_bytes());
    let name = format!(
        "shop-pg-template-{}{}",
        hex::encode(&digest[..8]),
        if as_postgres { "-postgres" } else { "" }
    );
    let template = std::env::temp_dir().join(name);
    let whole = |template: &Path| template.join("data").join("PG_VERSION").exists();
    if whole(&template) {
        return Ok(template);
    }
    let making = template.with_extension(uuid::Uuid::new_v4().simple().to_string());
    std::fs::create_dir(&making)?;
    let made = make_template(bin, as_postgres, &making);
    if made.is_ok() {
        // Fails if another test's template is already in place.
        let _ = std::fs::rename(&making, &template);
    }
    let _ = std::fs::remove_dir_all(&making);
    if whole(&template) {
        return Ok(template);
    }
    made?;
    anyhow::bail!("cannot put the template `{}` in place", template.display())
}

fn make_template(bin: &Path, as_postgres: bool, dir: &Path) -> anyhow::Result<()> {
    if as_postgres {
        give_to_postgres(dir)?;
    }
    let data = dir.join("data").display().to_string();
    run(
        bin,
        as_postgres,
        dir,
        "initdb",
        &[
            "-D",
            &data,
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ],
    )
}

/// Makes `dir` (or a file) the `postgres` user's, for a server run as that user (PostgreSQL
/// refuses to run as root).
fn give_to_postgres(dir: &Path) -> anyhow::Result<()> {
    let status = Command::new("chown").arg("postgres:").arg(dir).status()?;
    anyhow::ensure!(
        status.success(),
        "cannot give `{}` to `postgres`",
        dir.display()
    );
    Ok(())
}

/// The folder of `initdb` and `pg_ctl`: `SHOP_PG_BIN`, else the newest
/// under Debian's `/usr/lib/postgresql`.
fn programs() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("SHOP_PG_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        anyhow::anyhow!(
            "PostgreSQL's `initdb` is not under `/usr/lib/postgresql`\n\
             hint: run `scripts/setup`, which installs Debian's `postgresql`, or set `SHOP_PG_BIN` to the folder of `initdb`"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}
