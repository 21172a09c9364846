//! Where the lake is and how its tables are configured (the `[lake]` section of the file).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Options of the lake (part of every stage that writes or reads it). `Default` runs on a
/// laptop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LakeOptions {
    /// Folder holding one sub-folder per table (`<data-dir>/lake`). Created when missing.
    /// Not read from the file: `--data-dir` sets it.
    #[serde(skip)]
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

impl LakeOptions {
    /// Both sizes are at least 1.
    pub fn validate(&self) -> Result<()> {
        if self.checkpoint_interval == 0 {
            return Err(Error::Options(
                "checkpoint_interval must be at least 1 (commits)".into(),
            ));
        }
        if self.target_file_size == 0 {
            return Err(Error::Options(
                "target_file_size must be at least 1 (bytes)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_zero_sizes_are_not() {
        assert!(LakeOptions::default().validate().is_ok());
        for bad in [
            LakeOptions {
                checkpoint_interval: 0,
                ..Default::default()
            },
            LakeOptions {
                target_file_size: 0,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
