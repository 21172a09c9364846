//! Objects kept beside the tables but in none of them (the photos of citizens' reports):
//! `<root>/<folder>/…` in the lake's own place, a folder on disk or the lake's bucket.
//!
//! On a bucket, every replica of the API reads and writes the same objects: a photo sent
//! to one replica joins a report submitted through another, and either serves it. A
//! folder under `_` is opened by no Delta reader.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path;

use crate::{Error, Lake, Result};

/// Where the objects of one folder live.
#[derive(Debug, Clone)]
pub struct Blobs {
    pub store: Arc<dyn ObjectStore>,
    /// The folder's prefix in `store`.
    pub prefix: Path,
    /// The folder on disk, when the lake is in a folder (a writer syncs what it wrote).
    pub local: Option<PathBuf>,
}

impl Blobs {
    /// The path of object `name` in the folder.
    pub fn path(&self, name: &str) -> Path {
        self.prefix.clone().join(name)
    }
}

impl Lake {
    /// The objects of `folder` under the lake's root (created on disk when missing).
    pub fn blobs(&self, folder: &str) -> Result<Blobs> {
        let root = self.root();
        let location = |message: String| Error::Location {
            location: format!("{root}{folder}"),
            message,
        };
        if let Ok(dir) = root.to_file_path() {
            let dir = dir.join(folder);
            std::fs::create_dir_all(&dir).map_err(|e| location(e.to_string()))?;
            let store =
                LocalFileSystem::new_with_prefix(&dir).map_err(|e| location(e.to_string()))?;
            return Ok(Blobs {
                store: Arc::new(store),
                prefix: Path::default(),
                local: Some(dir),
            });
        }
        let store = crate::object_storage::bucket_store(root, &Default::default())
            .map_err(|e| location(e.to_string()))?;
        let prefix = Path::parse(format!("{}/{folder}", root.path().trim_matches('/')))
            .map_err(|e| location(e.to_string()))?;
        Ok(Blobs {
            store,
            prefix,
            local: None,
        })
    }
}
