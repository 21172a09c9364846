//! The embedded Kafka-protocol broker (Tansu, in-process, SQLite storage).
//!
//! `vallee up` needs nothing installed: it starts Tansu on a tokio task with its SQLite file
//! under `<data-dir>/broker/`. Two quirks of Tansu 0.6 are handled here (see
//! `docs/architecture.md`): the SQLite path in the storage URL is joined to the working
//! directory (we pass `sqlite:////abs/path`, whose path component `//abs/path` survives the
//! join as an absolute path), and its `header` table lacks the index that keeps consumption
//! fast, which we create through libsql once the schema exists.
//!
//! Durability: Tansu 0.6 sets `PRAGMA synchronous = normal` on every connection it opens,
//! so a commit reaches the write-ahead log but not the disk before the producer is told
//! its record is safe. [`durability`] puts every SQLite connection of the process in
//! `synchronous=FULL` as it opens and ignores the later request to lower it, unless
//! [`BrokerStorage::SqliteNormalSync`] was chosen.
//!
//! Retention is Tansu's maintenance task, which deletes from topics whose `cleanup.policy`
//! says `delete` records older than their `retention.ms` (by the records' timestamps). It
//! runs when the broker starts, then every 10 minutes by default; the hub runs it every
//! [`RETENTION_CHECK`] (the storage URL's `maintenance_interval`), so a beacon sighting
//! does not outlive its 24 h by more than a minute.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::task::JoinHandle;
use url::Url;

/// Where the embedded broker keeps its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BrokerStorage {
    /// SQLite under the data directory, every commit written through to the disk
    /// (`synchronous=FULL`) before the broker acknowledges it: what a producer told
    /// `acks=all` believes. The choice for data.
    #[default]
    Sqlite,
    /// SQLite as Tansu sets it up (`synchronous=NORMAL`): an acknowledged record survives
    /// a killed process but not a power cut in the moments after it was acknowledged.
    /// Faster on slow disks; see `vallee bench ingest` for the cost on yours.
    SqliteNormalSync,
    /// Tansu's memory engine, FOR BENCHMARKS ONLY: it serves several times faster than
    /// SQLite, so a bench can see past the broker, but it loses the rest of a batch when a
    /// consumer resumes or seeks mid-batch and forgets everything when it stops.
    Memory,
}

/// A running embedded broker. Dropping it stops the broker task.
pub struct EmbeddedBroker {
    addr: SocketAddr,
    db_path: PathBuf,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("addr", &self.addr)
            .field("db", &self.db_path)
            .finish()
    }
}

/// The storage URL of a SQLite file at an absolute path (see the module docs).
pub fn sqlite_url(db_path: &Path) -> Result<Url> {
    let text = format!("sqlite:///{}", db_path.display());
    let url = Url::parse(&text).with_context(|| format!("storage url {text}"))?;
    // Tansu uses the path as written in the URL (percent-encoded): refuse what would change.
    if url.path() != format!("/{}", db_path.display()) {
        bail!(
            "the broker's data path {} must be plain (no spaces or special characters)",
            db_path.display()
        );
    }
    Ok(url)
}

/// How often the embedded broker applies its topics' retention.
pub const RETENTION_CHECK: Duration = Duration::from_secs(60);

/// The storage URL of the broker: its SQLite file, and how often it applies retention.
pub fn storage_url(db_path: &Path, retention_check: Duration) -> Result<Url> {
    let mut url = sqlite_url(db_path)?;
    let every = format!("{}ms", retention_check.as_millis().max(1));
    url.query_pairs_mut()
        .append_pair("maintenance_interval", &every);
    Ok(url)
}

/// A free port on 127.0.0.1 (Tansu does not report the port it bound).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EmbeddedBroker {
    /// Starts a broker listening on `listen` (port 0: a free port) with its storage in
    /// `dir`, and waits until it accepts connections.
    pub async fn start(listen: SocketAddr, dir: &Path) -> Result<EmbeddedBroker> {
        Self::start_with(listen, dir, RETENTION_CHECK).await
    }

    /// [`EmbeddedBroker::start`], applying retention every `retention_check` (the first
    /// time at once).
    pub async fn start_with(
        listen: SocketAddr,
        dir: &Path,
        retention_check: Duration,
    ) -> Result<EmbeddedBroker> {
        Self::start_on(listen, dir, retention_check, BrokerStorage::Sqlite).await
    }

    /// [`EmbeddedBroker::start_with`] on `storage` (see [`BrokerStorage::Memory`] before
    /// choosing anything but SQLite).
    pub async fn start_on(
        listen: SocketAddr,
        dir: &Path,
        retention_check: Duration,
        storage: BrokerStorage,
    ) -> Result<EmbeddedBroker> {
        let addr = if listen.port() == 0 {
            SocketAddr::new(listen.ip(), free_port()?)
        } else {
            listen
        };
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            bail!(
                "{addr} is already in use: is another hub running? (use --broker-listen or --kafka-brokers)"
            );
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let db_path = std::fs::canonicalize(dir)?.join("tansu.db");
        let listener = Url::parse(&format!("tcp://{addr}"))?;
        type TansuBroker = tansu_broker::broker::Broker<
            tansu_broker::coordinator::group::administrator::Controller<
                tansu_storage::StorageContainer,
            >,
            tansu_storage::StorageContainer,
        >;
        let broker = TansuBroker::builder()
            .node_id(1)
            .cluster_id("vallee")
            .incarnation_id(uuid::Uuid::new_v4())
            .advertised_listener(listener.clone())
            .storage(match storage {
                BrokerStorage::Sqlite | BrokerStorage::SqliteNormalSync => {
                    durability::write_through(storage == BrokerStorage::Sqlite).await;
                    storage_url(&db_path, retention_check)?
                }
                BrokerStorage::Memory => Url::parse("memory://tansu/")?,
            })
            .listener(listener)
            .silent(true)
            .build()
            .await
            .map_err(|e| anyhow::anyhow!("starting the embedded broker: {e:?}"))?;
        let task = tokio::spawn(async move {
            let mut broker = broker;
            if let Err(e) = broker.serve(tokio::time::Instant::now()).await {
                tracing::error!(error = ?e, "embedded broker stopped");
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline || task.is_finished() {
                task.abort();
                bail!("the embedded broker did not start listening on {addr}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match storage {
            BrokerStorage::Sqlite | BrokerStorage::SqliteNormalSync => {
                index_header_table(&db_path).await?;
                tracing::info!(
                    %addr,
                    db = %db_path.display(),
                    synchronous = if storage == BrokerStorage::Sqlite { "full" } else { "normal" },
                    "embedded broker listening"
                );
            }
            BrokerStorage::Memory => tracing::warn!(
                %addr,
                "embedded broker listening on its MEMORY engine: for benchmarks only, it loses data"
            ),
        }
        Ok(EmbeddedBroker {
            addr,
            db_path,
            task,
        })
    }

    /// The bootstrap address for clients.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the broker (Tansu has no shutdown API; SQLite is crash-safe).
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every SQLite connection this process opens, Tansu's included, in `synchronous=FULL`.
///
/// Tansu has no setting for it and runs `PRAGMA synchronous = normal` on each connection of
/// its pool. SQLite's hooks let us decide anyway, without patching Tansu: an automatic
/// extension (run by `sqlite3_open` on every new connection) sets `FULL` and installs an
/// authorizer that turns any later `PRAGMA synchronous = …` into a no-op (SQLite skips a
/// pragma its authorizer answers `SQLITE_IGNORE`; reading the level stays allowed).
pub mod durability {
    use std::ffi::{CStr, c_char, c_int, c_void};
    use std::sync::Once;
    use std::sync::atomic::{AtomicBool, Ordering};

    use libsql::ffi;

    static WRITE_THROUGH: AtomicBool = AtomicBool::new(true);
    static HOOK: Once = Once::new();

    /// From now on, connections opened by this process write every commit through to
    /// the disk (`true`) or keep what the opener asks for (`false`).
    pub async fn write_through(on: bool) {
        WRITE_THROUGH.store(on, Ordering::SeqCst);
        if HOOK.is_completed() {
            return;
        }
        // libsql configures SQLite's threading once, before SQLite initializes, and
        // asserts it could; registering the hook initializes SQLite, so libsql goes first.
        if let Err(e) = libsql::Builder::new_local(":memory:").build().await {
            tracing::error!(error = %e, "could not open SQLite to set its durability");
            return;
        }
        HOOK.call_once(|| {
            // SAFETY: registers a plain function pointer with SQLite's global list.
            let rc = unsafe { ffi::sqlite3_auto_extension(Some(on_open)) };
            if rc != ffi::SQLITE_OK {
                tracing::error!(rc, "could not ask SQLite for write-through connections");
            }
        });
    }

    unsafe extern "C" fn on_open(
        db: *mut ffi::sqlite3,
        _error: *mut *const c_char,
        _api: *const ffi::sqlite3_api_routines,
    ) -> c_int {
        if !WRITE_THROUGH.load(Ordering::SeqCst) {
            return ffi::SQLITE_OK;
        }
        // SAFETY: `db` is the connection SQLite is opening; the SQL is a C string literal.
        unsafe {
            let rc = ffi::sqlite3_exec(
                db,
                c"PRAGMA synchronous = FULL".as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            ffi::sqlite3_set_authorizer(db, Some(keep_synchronous), std::ptr::null_mut())
        }
    }

    unsafe extern "C" fn keep_synchronous(
        _user: *mut c_void,
        action: c_int,
        name: *const c_char,
        value: *const c_char,
        _database: *const c_char,
        _trigger: *const c_char,
    ) -> c_int {
        if action != ffi::SQLITE_PRAGMA || name.is_null() || value.is_null() {
            return ffi::SQLITE_OK;
        }
        // SAFETY: SQLite passes NUL-terminated strings valid for the call.
        let name = unsafe { CStr::from_ptr(name) };
        if name.to_bytes().eq_ignore_ascii_case(b"synchronous") {
            ffi::SQLITE_IGNORE
        } else {
            ffi::SQLITE_OK
        }
    }
}

/// Without this index Tansu's SQLite engine serves ~550 messages/s; with it, tens of
/// thousands. Idempotent, survives restarts.
async fn index_header_table(db_path: &Path) -> Result<()> {
    let db = libsql::Builder::new_local(db_path)
        .build()
        .await
        .context("opening the broker database")?;
    let conn = db.connect()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match conn
            .execute(
                "CREATE INDEX IF NOT EXISTS header_topition_offset ON header(topition, offset_id)",
                (),
            )
            .await
        {
            Ok(_) => return Ok(()),
            // The schema is created by the broker; wait for it.
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "broker schema not ready yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).context("indexing the broker's header table"),
        }
    }
}

#[cfg(test)]
mod tests {
    async fn level_after_asking_for_normal(path: std::path::PathBuf) -> (i64, i64) {
        let db = libsql::Builder::new_local(path).build().await.unwrap();
        let conn = db.connect().unwrap();
        // What Tansu runs on each connection of its pool.
        conn.execute("PRAGMA journal_mode = WAL", ()).await.ok();
        conn.execute("PRAGMA synchronous = normal", ())
            .await
            .unwrap();
        conn.execute("PRAGMA foreign_keys = ON", ()).await.unwrap();
        let mut rows = conn.query("PRAGMA synchronous", ()).await.unwrap();
        let level: i64 = rows.next().await.unwrap().unwrap().get(0).unwrap();
        let mut rows = conn.query("PRAGMA foreign_keys", ()).await.unwrap();
        let keys: i64 = rows.next().await.unwrap().unwrap().get(0).unwrap();
        (level, keys)
    }

    #[tokio::test]
    async fn a_connection_asked_for_normal_sync_keeps_writing_through() {
        let dir = tempfile::tempdir().unwrap();
        // 2 is FULL, 1 NORMAL; other pragmas pass untouched.
        super::durability::write_through(false).await;
        let relaxed = level_after_asking_for_normal(dir.path().join("a.db")).await;
        super::durability::write_through(true).await;
        let full = level_after_asking_for_normal(dir.path().join("b.db")).await;
        assert_eq!(relaxed, (1, 1), "sqlite-normal-sync keeps Tansu's choice");
        assert_eq!(full, (2, 1), "the default writes every commit through");
    }

    #[test]
    fn sqlite_urls_keep_absolute_paths() {
        let url = super::sqlite_url(std::path::Path::new("/tmp/xy/broker/tansu.db")).unwrap();
        let mut path = std::env::current_dir().unwrap();
        // What Tansu does with it: push the path minus one leading slash onto the cwd.
        path.push(url.path().strip_prefix('/').unwrap());
        assert!(path.starts_with("/tmp"), "{path:?}");
        assert_eq!(path, std::path::Path::new("/tmp/xy/broker/tansu.db"));
        assert!(super::sqlite_url(std::path::Path::new("/tmp/x y/tansu.db")).is_err());
    }

    #[test]
    fn the_storage_url_asks_for_retention_every_minute() {
        let db = std::path::Path::new("/tmp/xy/broker/tansu.db");
        let url = super::storage_url(db, super::RETENTION_CHECK).unwrap();
        assert_eq!(
            url.as_str(),
            "sqlite:////tmp/xy/broker/tansu.db?maintenance_interval=60000ms"
        );
    }
}
