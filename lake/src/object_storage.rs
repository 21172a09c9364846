//! Tables on S3-compatible object storage (`s3://bucket/prefix`).
//!
//! deltalake's own `s3` feature brings the AWS SDK (for credentials chains the hub does not
//! need); object_store's S3 client is already in the build (through delta's kernel), so the
//! hub registers it for `s3://` and `s3a://` itself, with the default log store.
//!
//! Several writers on one table are safe without a lock service because the default log
//! store writes each commit file `_delta_log/<version>.json` with `PutMode::Create`, which
//! object_store sends as a conditional put (`If-None-Match: *`): the store refuses the second
//! writer of a version with 412, delta sees `VersionAlreadyExists` and the writer retries on
//! the new version (or is fenced by the hub's offsets, see [`crate::append`]). A store that
//! ignores `If-None-Match` would let two writers overwrite each other's commit: the hub
//! checks at start ([`check_conditional_writes`]) and refuses such a store.
//!
//! Settings: the usual `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, …), then the
//! file's `[lake.storage]` keys (object_store's names: `aws_endpoint`, `aws_region`,
//! `aws_allow_http`, `aws_virtual_hosted_style_request`, …), which win.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use deltalake::DeltaResult;
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig, default_logstore,
    logstore_factories, object_store_factories,
};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use url::Url;

use crate::{Error, Result};

/// The URL schemes served by object storage.
pub const SCHEMES: [&str; 2] = ["s3", "s3a"];

/// The file's settings, applied to every S3 store this process opens.
static SETTINGS: RwLock<BTreeMap<String, String>> = RwLock::new(BTreeMap::new());

/// One client per bucket and settings: delta-rs asks for a store each time a table is
/// opened, and a client of its own each time would open a connection (a TLS handshake on
/// a real store) per table per open instead of reusing its pool.
type Clients = std::sync::Mutex<BTreeMap<(String, Vec<(String, String)>), ObjectStoreRef>>;
static CLIENTS: Clients = std::sync::Mutex::new(BTreeMap::new());

/// Checks `settings` (object_store's S3 keys) and registers the S3 handlers with them.
pub fn register(settings: &BTreeMap<String, String>) -> Result<()> {
    for key in settings.keys() {
        key.to_ascii_lowercase()
            .parse::<AmazonS3ConfigKey>()
            .map_err(|_| {
                Error::Options(format!(
                    "[lake.storage] {key:?} is not an S3 setting (see docs/configuration.md)"
                ))
            })?;
    }
    *SETTINGS.write().unwrap_or_else(|e| e.into_inner()) = settings.clone();
    CLIENTS.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let factory = Arc::new(S3Factory);
    for scheme in SCHEMES {
        let url = Url::parse(&format!("{scheme}://")).expect("a scheme is a URL");
        object_store_factories().insert(url.clone(), factory.clone());
        logstore_factories().insert(url, factory.clone());
    }
    Ok(())
}

/// A store for the bucket of `url`, with the environment's and the file's settings.
pub fn bucket_store(url: &Url, extra: &BTreeMap<String, String>) -> DeltaResult<ObjectStoreRef> {
    let key = (
        format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
        extra.clone().into_iter().collect::<Vec<_>>(),
    );
    if let Some(store) = CLIENTS.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(store.clone());
    }
    let store = new_bucket_store(url, extra)?;
    CLIENTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, store.clone());
    Ok(store)
}

fn new_bucket_store(url: &Url, extra: &BTreeMap<String, String>) -> DeltaResult<ObjectStoreRef> {
    let mut builder = AmazonS3Builder::from_env()
        .with_url(url.as_str())
        .with_conditional_put(S3ConditionalPut::ETagMatch);
    let settings = SETTINGS.read().unwrap_or_else(|e| e.into_inner()).clone();
    for (key, value) in settings.iter().chain(extra) {
        if let Ok(key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
            builder = builder.with_config(key, value.clone());
        }
    }
    Ok(Arc::new(builder.build()?))
}

struct S3Factory;

impl ObjectStoreFactory for S3Factory {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        let extra: BTreeMap<String, String> = config.raw.clone().into_iter().collect();
        let store = bucket_store(url, &extra)?;
        Ok((store, Path::parse(url.path())?))
    }
}

impl LogStoreFactory for S3Factory {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

/// Whether the table at `table_url` has a file in its `_delta_log/`.
pub async fn has_log(table_url: &Url) -> Result<bool> {
    use futures::StreamExt;
    let location = |message: String| Error::Location {
        location: table_url.to_string(),
        message,
    };
    let store = bucket_store(table_url, &BTreeMap::new()).map_err(|e| location(e.to_string()))?;
    let prefix = Path::parse(format!(
        "{}/_delta_log/",
        table_url.path().trim_matches('/')
    ))
    .map_err(|e| location(e.to_string()))?;
    match store.list(Some(&prefix)).next().await {
        None => Ok(false),
        Some(Ok(_)) => Ok(true),
        Some(Err(e)) => Err(location(e.to_string())),
    }
}

/// Refuses a store that would let two writers commit the same table version: writes a
/// probe object under `<root>/_vallee/` twice with `PutMode::Create`; the second must be
/// refused as existing.
pub async fn check_conditional_writes(root: &Url) -> Result<()> {
    let location = |message: String| Error::Location {
        location: root.to_string(),
        message,
    };
    let store = bucket_store(root, &BTreeMap::new()).map_err(|e| location(e.to_string()))?;
    let probe = Path::parse(format!(
        "{}/_vallee/conditional-write-probe-{}",
        root.path().trim_matches('/'),
        uuid_like()
    ))
    .map_err(|e| location(e.to_string()))?;
    let create = || PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    store
        .put_opts(&probe, PutPayload::from_static(b"1"), create())
        .await
        .map_err(|e| location(format!("cannot write to the bucket: {e}")))?;
    let second = store
        .put_opts(&probe, PutPayload::from_static(b"2"), create())
        .await;
    store.delete(&probe).await.ok();
    match second {
        Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
        Ok(_) => Err(location(
            "the store accepted a second create of the same object: it ignores conditional \
             writes (If-None-Match), so two writers could overwrite each other's commits; \
             use a store that honours them (AWS S3, MinIO, Ceph RGW ≥ 18, …)"
                .into(),
        )),
        Err(e) => Err(location(format!("checking conditional writes: {e}"))),
    }
}

/// A name unique enough for a probe object (time and process).
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{:x}", std::process::id())
}
