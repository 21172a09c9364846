//! The restricted store of reporters' contact details, under `<data-dir>/private/contacts`.
//!
//! Contact details never travel through Kafka and never reach a public answer: they are
//! written here, one file per report (mode 0600), read only for staff, exported and erased
//! on request (GDPR articles 15 and 17).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a reporter may leave so the agency can reach them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

impl Contact {
    pub fn is_empty(&self) -> bool {
        self.email.is_none()
            && self.phone.is_none()
            && self.first_name.is_none()
            && self.last_name.is_none()
    }
}

/// The store.
#[derive(Debug, Clone)]
pub struct ContactStore {
    dir: PathBuf,
}

fn file_name(report_id: &str) -> Option<String> {
    report_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
        .then(|| format!("{report_id}.json"))
}

impl ContactStore {
    /// Opens (and creates) the store under `private_dir`.
    pub fn open(private_dir: &Path) -> std::io::Result<Self> {
        let dir = private_dir.join("contacts");
        std::fs::create_dir_all(&dir)?;
        Ok(ContactStore { dir })
    }

    /// Keeps the contact of a report, durably (written, synced, then renamed).
    pub fn put(&self, report_id: &str, contact: &Contact) -> std::io::Result<()> {
        let name = file_name(report_id).ok_or_else(|| std::io::Error::other("bad report id"))?;
        vallee_lake::text_keys::write_durably(&self.dir, &name, &serde_json::to_vec(contact)?)
    }

    /// The contact left with a report, if any.
    pub fn get(&self, report_id: &str) -> std::io::Result<Option<Contact>> {
        let Some(name) = file_name(report_id) else {
            return Ok(None);
        };
        match std::fs::read(self.dir.join(name)) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reports whose contact has this email (case-insensitive).
    pub fn reports_of_email(&self, email: &str) -> std::io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|n| !n.starts_with('.'))
            else {
                continue;
            };
            let contact: Contact = serde_json::from_slice(&std::fs::read(&path)?)?;
            if contact
                .email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
            {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Every report with a kept contact, with when its file was written.
    pub fn list(&self) -> std::io::Result<Vec<(String, std::time::SystemTime)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            if id.starts_with('.') {
                continue; // a write in progress
            }
            out.push((id.to_string(), entry.metadata()?.modified()?));
        }
        out.sort();
        Ok(out)
    }

    /// Erases the contact of a report; `true` if there was one.
    pub fn erase(&self, report_id: &str) -> std::io::Result<bool> {
        let Some(name) = file_name(report_id) else {
            return Ok(false);
        };
        match std::fs::remove_file(self.dir.join(name)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_kept_found_by_email_and_erased() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContactStore::open(dir.path()).unwrap();
        let c = Contact {
            email: Some("Marie@example.fr".into()),
            ..Default::default()
        };
        store.put("r-1", &c).unwrap();
        store.put("r-2", &c).unwrap();
        assert_eq!(store.get("r-1").unwrap(), Some(c));
        assert_eq!(
            store.reports_of_email("marie@EXAMPLE.fr").unwrap(),
            vec!["r-1", "r-2"]
        );
        assert!(store.erase("r-1").unwrap());
        assert!(!store.erase("r-1").unwrap());
        assert_eq!(store.get("r-1").unwrap(), None);
        assert!(store.get("../etc/passwd").unwrap().is_none());
    }
}
