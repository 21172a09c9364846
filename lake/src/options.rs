//! Where the lake is and how its tables are configured (the `[lake]` section of the file).

use std::collections::BTreeMap;
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
    /// The lake on object storage instead: `s3://bucket/prefix` (`--lake`, `VALLEE_LAKE`).
    /// Empty: the folder `root`. A `file://` URL names a folder.
    pub url: Option<String>,
    /// Settings of the object store, object_store's S3 keys (`aws_endpoint`,
    /// `aws_region`, `aws_allow_http`, `aws_virtual_hosted_style_request`, …); they win
    /// over the `AWS_*` environment variables. Keep credentials in the environment.
    pub storage: BTreeMap<String, String>,
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
            url: None,
            storage: BTreeMap::new(),
            checkpoint_interval: 20,
            target_file_size: 128 * 1024 * 1024,
        }
    }
}

impl LakeOptions {
    /// Where the tables are: `url` when given, else the folder `root`.
    pub fn location(&self) -> Result<Location> {
        let Some(text) = &self.url else {
            return Ok(Location::Folder(self.root.clone()));
        };
        let bad = |message: &str| Error::Location {
            location: text.clone(),
            message: message.into(),
        };
        let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        match url.scheme() {
            "file" => url
                .to_file_path()
                .map(Location::Folder)
                .map_err(|()| bad("not an absolute path")),
            "s3" | "s3a" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(bad("names no bucket (s3://bucket/prefix)"));
                }
                // A root is a folder: its tables are joined under it.
                let mut url = url;
                if !url.path().ends_with('/') {
                    let path = format!("{}/", url.path());
                    url.set_path(&path);
                }
                Ok(Location::ObjectStore(url))
            }
            other => Err(bad(&format!(
                "{other}:// is not supported (file:// or s3://bucket/prefix)"
            ))),
        }
    }

    /// Both sizes are at least 1, the location is one the hub can use.
    pub fn validate(&self) -> Result<()> {
        self.location()?;
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

/// Where a lake's tables live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A folder on this machine.
    Folder(PathBuf),
    /// A prefix in an S3-compatible bucket (ending in `/`).
    ObjectStore(url::Url),
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

    #[test]
    fn a_lake_url_names_a_folder_or_a_bucket_prefix() {
        let at = |url: &str| {
            LakeOptions {
                url: Some(url.into()),
                ..Default::default()
            }
            .location()
        };
        assert_eq!(
            at("s3://vallee/lake").unwrap(),
            Location::ObjectStore(url::Url::parse("s3://vallee/lake/").unwrap())
        );
        assert_eq!(
            at("file:///srv/vallee/lake").unwrap(),
            Location::Folder(PathBuf::from("/srv/vallee/lake"))
        );
        for bad in ["s3:///lake", "gs://bucket/lake", "lake", "http://x/lake"] {
            assert!(at(bad).is_err(), "{bad}");
        }
        assert_eq!(
            LakeOptions::default().location().unwrap(),
            Location::Folder(PathBuf::from("data/lake"))
        );
    }
}
