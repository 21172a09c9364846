//! The restricted store of the keys that seal what people wrote, under
//! `<data-dir>/private/text-keys` (see `vallee_schemas::citizen::sealed`).
//!
//! One file per subject (a report, an idea, a comment), named by the SHA-256 of the
//! subject so no id reaches a file name, holding the 32 key bytes (mode 0600). Erasing a
//! subject deletes its key file and leaves a marker in its place (`<name>.erased`), kept
//! for good: a key record replayed from the topic after the erasure is then not taken
//! back. The API (which seals and opens) and the open-data publisher (which opens the
//! texts it publishes) share one store per process; the store keeps every key in memory
//! too, so opening a text costs no disk read.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use sha2::{Digest, Sha256};
use vallee_schemas::citizen::sealed::{self, TextKey};

/// What reading a stored text gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The text (opened, or written before sealing existed).
    Text(String),
    /// Its subject was erased.
    Erased,
    /// Sealed under a key this store never received (or a forged text).
    Unavailable,
}

/// The store; `Default` keeps keys in memory only (unit tests, tools without a data dir).
#[derive(Debug, Default)]
pub struct TextKeys {
    dir: Option<PathBuf>,
    keys: RwLock<HashMap<String, TextKey>>,
    erased: RwLock<HashSet<String>>,
}

fn name_of(subject: &str) -> String {
    Sha256::digest(subject.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl TextKeys {
    /// Opens (and creates) the store under `private_dir`, loading every key and marker.
    pub fn open(private_dir: &Path) -> std::io::Result<Self> {
        let dir = private_dir.join("text-keys");
        std::fs::create_dir_all(&dir)?;
        let (mut keys, mut erased) = (HashMap::new(), HashSet::new());
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(name) = name.strip_suffix(".erased") {
                erased.insert(name.to_string());
            } else if name.len() == 64 && !name.starts_with('.') {
                let bytes: [u8; 32] = std::fs::read(&path)?.try_into().map_err(|_| {
                    std::io::Error::other(format!("{} is not a 32-byte key", path.display()))
                })?;
                keys.insert(name.to_string(), TextKey::from_bytes(bytes));
            }
        }
        for name in &erased {
            keys.remove(name);
        }
        Ok(TextKeys {
            dir: Some(dir),
            keys: RwLock::new(keys),
            erased: RwLock::new(erased),
        })
    }

    /// The key of `subject`, if this store has it.
    pub fn get(&self, subject: &str) -> Option<TextKey> {
        self.keys
            .read()
            .expect("keys")
            .get(&name_of(subject))
            .cloned()
    }

    /// Whether `subject` was erased.
    pub fn is_erased(&self, subject: &str) -> bool {
        self.erased
            .read()
            .expect("keys")
            .contains(&name_of(subject))
    }

    /// How many subjects were erased (the publisher rewrites what it published when this
    /// moves).
    pub fn erased_count(&self) -> usize {
        self.erased.read().expect("keys").len()
    }

    /// The key of `subject`, made and kept durably if it had none, before it is returned
    /// (a text is never sealed under a key that a crash could lose).
    pub fn create(&self, subject: &str) -> std::io::Result<TextKey> {
        if let Some(key) = self.get(subject) {
            return Ok(key);
        }
        let key = TextKey::generate();
        if !self.put(subject, &key)? {
            return Err(std::io::Error::other(format!(
                "{subject} was erased: nothing new is written under it"
            )));
        }
        Ok(self.get(subject).unwrap_or(key))
    }

    /// Keeps `key` for `subject` (a key another replica handed over); `false`, and
    /// nothing kept, when the subject was erased. A key already kept is not replaced.
    pub fn put(&self, subject: &str, key: &TextKey) -> std::io::Result<bool> {
        let name = name_of(subject);
        if self.erased.read().expect("keys").contains(&name) {
            return Ok(false);
        }
        if self.keys.read().expect("keys").contains_key(&name) {
            return Ok(true);
        }
        if let Some(dir) = &self.dir {
            write_durably(dir, &name, key.as_bytes())?;
        }
        self.keys.write().expect("keys").insert(name, key.clone());
        Ok(true)
    }

    /// Erases `subject`: its marker is written first, then its key deleted; `true` if
    /// there was a key.
    pub fn erase(&self, subject: &str) -> std::io::Result<bool> {
        let name = name_of(subject);
        if let Some(dir) = &self.dir {
            write_durably(dir, &format!("{name}.erased"), b"")?;
            match std::fs::remove_file(dir.join(&name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            std::fs::File::open(dir)?.sync_all()?;
        }
        self.erased.write().expect("keys").insert(name.clone());
        Ok(self.keys.write().expect("keys").remove(&name).is_some())
    }

    /// `stored` (field `field` of `subject`) as a reader may see it.
    pub fn open_text(&self, subject: &str, field: &str, stored: &str) -> Opened {
        if self.is_erased(subject) {
            return Opened::Erased;
        }
        if !sealed::is_sealed(stored) {
            return Opened::Text(stored.to_string());
        }
        match self.get(subject).map(|k| k.open(subject, field, stored)) {
            Some(Ok(text)) => Opened::Text(text),
            _ => Opened::Unavailable,
        }
    }
}

/// Writes `bytes` to `dir/name` (mode 0600): a temporary file, synced, then renamed (the
/// restricted stores under `private/` all write so).
pub fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(tmp, dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_a_restart_and_an_erasure_survives_a_replayed_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = TextKeys::open(dir.path()).unwrap();
        let key = store.create("r-1").unwrap();
        let sealed = key.seal("r-1", "description", "Trou devant le 3 rue Haute");
        let other = TextKey::generate();
        assert!(store.put("i-2", &other).unwrap());
        assert!(store.put("i-2", &TextKey::generate()).unwrap());
        assert_eq!(store.get("i-2"), Some(other.clone()), "a kept key stays");
        assert_eq!(
            store.open_text("r-1", "description", &sealed),
            Opened::Text("Trou devant le 3 rue Haute".into())
        );
        assert_eq!(
            store.open_text("r-1", "description", "écrit avant le scellement"),
            Opened::Text("écrit avant le scellement".into())
        );
        assert_eq!(
            store.open_text("r-9", "description", &sealed),
            Opened::Unavailable
        );

        let reopened = TextKeys::open(dir.path()).unwrap();
        assert_eq!(reopened.get("r-1"), Some(key.clone()));
        assert!(reopened.erase("r-1").unwrap());
        assert_eq!(
            reopened.open_text("r-1", "description", &sealed),
            Opened::Erased
        );
        // The key's record replayed from the topic later is not taken back, after a
        // restart either; nothing new is sealed under an erased subject.
        assert!(!reopened.put("r-1", &key).unwrap());
        let after = TextKeys::open(dir.path()).unwrap();
        assert!(!after.put("r-1", &key).unwrap());
        assert_eq!(after.get("r-1"), None);
        assert!(after.is_erased("r-1") && after.erased_count() == 1);
        assert!(after.create("r-1").is_err());
        assert_eq!(after.get("i-2"), Some(other));
        // No subject in a file name, and no key file left for the erased one.
        let names: Vec<String> = std::fs::read_dir(dir.path().join("text-keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(
            names
                .iter()
                .all(|n| !n.contains("r-1") && !n.contains("i-2"))
        );
    }
}
