//! Sealed texts: what a person wrote travels and rests encrypted under a key of its own,
//! so that erasing the key erases the text everywhere a copy of it lies.
//!
//! The citizens' topics are kept forever (every API replica rebuilds its view from them)
//! and the lake's raw tables are append-only: neither can forget one person's description
//! of a pothole or one idea's body on request. So the API seals each such text before
//! it writes the event (ChaCha20-Poly1305 under a random 256-bit key per report, idea or
//! comment, the *subject*), keeps the key in the restricted store of `private/`, and hands
//! it to the other replicas on a topic of its own whose records expire (see
//! `TEXT_KEYS_TOPIC`). An erasure request deletes the key on every replica: from then on the
//! copies in the topics, the raw tables, the dead letters and any backup of them are
//! noise (*crypto-shredding*). The published tables, which hold opened texts, are rewritten
//! and vacuumed.
//!
//! A sealed text is `vallee-sealed:v1:` followed by the URL-safe base64 (no padding) of
//! the 96-bit nonce, the ciphertext and the 128-bit tag. The associated data binds the
//! subject and the field, so a sealed title cannot be replayed as another idea's body.
//! Texts written before sealing existed read as they are ([`is_sealed`] is false).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::Sha256;

/// What every sealed text starts with.
pub const PREFIX: &str = "vallee-sealed:v1:";

/// What the public and staff read in place of an erased text.
pub const ERASED: &str = "[texte effacé]";

/// What a replica shows for a sealed text whose key it never received (the key's record
/// expired from the topic before this replica read it, and no peer's `private/` was copied).
pub const UNAVAILABLE: &str = "[texte indisponible]";

const TAG_LEN: usize = 16;

/// A 256-bit key: one subject's texts, or the key that wraps them for the topic.
#[derive(Clone, PartialEq, Eq)]
pub struct TextKey([u8; 32]);

impl std::fmt::Debug for TextKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TextKey(…)")
    }
}

/// Why a sealed text did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("not a sealed text")]
    NotSealed,
    #[error("sealed text is not base64 or too short")]
    Malformed,
    #[error("sealed text does not open under this key, subject and field")]
    Forged,
}

impl TextKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system's random source works");
        TextKey(bytes)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        TextKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key derived from the replicas' shared secret for one purpose (`label`): the key
    /// that wraps the subjects' keys on the topic, the key of contact digests.
    pub fn derive(secret: &[u8], label: &str) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
        mac.update(b"vallee texts v1\0");
        mac.update(label.as_bytes());
        TextKey(mac.finalize().into_bytes().into())
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &self.0).expect("a 32-byte key"))
    }

    /// `text` sealed under this key for `field` of `subject`.
    pub fn seal(&self, subject: &str, field: &str, text: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system's random source works");
        let mut sealed = text.as_bytes().to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(subject, field)),
                &mut sealed,
            )
            .expect("ChaCha20-Poly1305 seals any length we write");
        let mut raw = Vec::with_capacity(NONCE_LEN + sealed.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// The text `sealed` holds, if it was sealed under this key for `field` of `subject`.
    pub fn open(&self, subject: &str, field: &str, sealed: &str) -> Result<String, SealError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(SealError::NotSealed)?;
        let mut raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SealError::Malformed)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Malformed);
        }
        let nonce: [u8; NONCE_LEN] = raw[..NONCE_LEN].try_into().expect("length checked");
        let clear = self
            .aead()
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(subject, field)),
                &mut raw[NONCE_LEN..],
            )
            .map_err(|_| SealError::Forged)?;
        String::from_utf8(clear.to_vec()).map_err(|_| SealError::Forged)
    }

    /// This key, wrapped under `wrapping` for the keys topic (bound to `subject`).
    pub fn wrap(&self, wrapping: &TextKey, subject: &str) -> String {
        wrapping.seal(subject, "text-key", &URL_SAFE_NO_PAD.encode(self.0))
    }

    /// The key `wrapped` holds, if `wrapping` wrapped it for `subject` (a record forged
    /// on the broker without the replicas' secret does not unwrap).
    pub fn unwrap_from(
        wrapping: &TextKey,
        subject: &str,
        wrapped: &str,
    ) -> Result<TextKey, SealError> {
        let text = wrapping.open(subject, "text-key", wrapped)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| SealError::Malformed)?;
        Ok(TextKey(bytes.try_into().map_err(|_| SealError::Malformed)?))
    }

    /// A keyed digest of an e-mail address (case-insensitive), so any replica can find a
    /// person's reports by e-mail without the address ever travelling: it is sealed with
    /// the report's texts, so an erased report no longer yields it either.
    pub fn contact_digest(&self, email: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(email.trim().to_lowercase().as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

fn aad(subject: &str, field: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(subject.len() + field.len() + 1);
    aad.extend_from_slice(subject.as_bytes());
    aad.push(0);
    aad.extend_from_slice(field.as_bytes());
    aad
}

/// Whether `text` is sealed (texts written before sealing existed are not).
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(PREFIX)
}

/// The longest sealed form of a text of at most `chars` characters (four bytes each at
/// most in UTF-8): what ingest accepts in place of the clear limit.
pub fn max_sealed_len(chars: usize) -> usize {
    PREFIX.len() + (NONCE_LEN + 4 * chars + TAG_LEN).div_ceil(3) * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_text_opens_only_under_its_key_subject_and_field() {
        let key = TextKey::generate();
        let text = "Lampadaire éteint devant chez moi, 12 rue du Pont";
        let sealed = key.seal("r-1", "description", text);
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("Lampadaire") && !sealed.contains("Pont"));
        assert_eq!(key.open("r-1", "description", &sealed).unwrap(), text);
        // Another subject, another field, another key, a flipped bit: nothing opens.
        assert_eq!(
            key.open("r-2", "description", &sealed),
            Err(SealError::Forged)
        );
        assert_eq!(
            key.open("r-1", "addressString", &sealed),
            Err(SealError::Forged)
        );
        assert_eq!(
            TextKey::generate().open("r-1", "description", &sealed),
            Err(SealError::Forged)
        );
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            key.open("r-1", "description", &String::from_utf8(tampered).unwrap()),
            Err(SealError::Forged)
        );
        assert_eq!(
            key.open("r-1", "description", text),
            Err(SealError::NotSealed)
        );
        assert_eq!(
            key.open("r-1", "description", "vallee-sealed:v1:%%"),
            Err(SealError::Malformed)
        );
        // The same text sealed twice differs (fresh nonce).
        assert_ne!(sealed, key.seal("r-1", "description", text));
    }

    #[test]
    fn a_wrapped_key_unwraps_only_with_the_replicas_key_and_its_subject() {
        let wrapping = TextKey::derive(b"replicas' secret", "text keys");
        let key = TextKey::generate();
        let wrapped = key.wrap(&wrapping, "i-7");
        assert_eq!(TextKey::unwrap_from(&wrapping, "i-7", &wrapped), Ok(key));
        assert!(TextKey::unwrap_from(&wrapping, "i-8", &wrapped).is_err());
        let other = TextKey::derive(b"another secret", "text keys");
        assert!(TextKey::unwrap_from(&other, "i-7", &wrapped).is_err());
        assert_ne!(
            TextKey::derive(b"s", "text keys"),
            TextKey::derive(b"s", "contact digests")
        );
    }

    #[test]
    fn the_longest_text_fits_the_sealed_bound() {
        let key = TextKey::generate();
        for text in ["", "a", &"é".repeat(5_000), &"𝄞".repeat(5_000)] {
            let chars = text.chars().count();
            let sealed = key.seal("s", "f", text);
            assert!(sealed.len() <= max_sealed_len(chars), "{chars} chars");
        }
        assert_eq!(
            max_sealed_len(0),
            PREFIX.len() + (NONCE_LEN + TAG_LEN).div_ceil(3) * 4
        );
    }

    #[test]
    fn contact_digests_ignore_case_and_differ_per_key() {
        let k = TextKey::derive(b"s", "contact digests");
        assert_eq!(
            k.contact_digest("Marie@Example.fr "),
            k.contact_digest("marie@example.fr")
        );
        assert_ne!(
            k.contact_digest("marie@example.fr"),
            k.contact_digest("paul@example.fr")
        );
        let other = TextKey::derive(b"t", "contact digests");
        assert_ne!(
            k.contact_digest("marie@example.fr"),
            other.contact_digest("marie@example.fr")
        );
    }
}
