//! Where the lake is and how its tables are configured.

use std::path::PathBuf;

/// Options of the lake (part of every stage that writes or reads it).
#[derive(Debug, Clone)]
pub struct LakeOptions {
    /// Folder holding one sub-folder per table (`<data-dir>/lake`). Created when missing.
    pub root: PathBuf,
    /// A Delta checkpoint is written every this many commits of a table, so readers and
    /// restarts never replay a long JSON log. Default 20.
    pub checkpoint_interval: u64,
    /// Roll to a new Parquet file past this many bytes within one commit. Default 128 MiB.
    pub target_file_size: u64,
}

impl Default for LakeOptions {
    fn default() -> Self {
        LakeOptions {
            root: PathBuf::from("data/lake"),
            checkpoint_interval: 20,
            target_file_size: 128 * 1024 * 1024,
        }
    }
}
