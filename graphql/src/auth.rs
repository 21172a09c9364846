//! Who is calling: anonymous, a citizen (anonymous bearer token) or staff.
//!
//! Citizens' tokens are self-verifying: `vc1.<random>.<mac>` where the MAC is an
//! HMAC-SHA256 of the random part under the replicas' shared secret, so any replica checks
//! any token without shared state. A citizen is known to the rest of the hub only by a
//! pseudonym (another keyed hash of the random part): enough to count one support per
//! citizen, nothing that leads back to a person. Staff tokens come from configuration and
//! are compared by their SHA-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::options::StaffMember;

/// The token of an `Authorization: Bearer …` header value.
pub fn bearer_token(value: &str) -> Option<&str> {
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    bearer_token(
        headers
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?,
    )
}

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a citizen token's tag (144 bits, the left of an HMAC-SHA256): every token
/// ever issued has exactly this many, and a tag of any other length is refused. Accepting
/// a shorter prefix would let a forger win one time in 256 with a one-byte tag.
const TAG_BYTES: usize = 18;

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    Citizen {
        /// Keyed hash of the token: the citizen's only identity in events.
        pseudonym: String,
    },
    Staff(StaffMember),
}

impl Caller {
    /// The `actor` written into events.
    pub fn actor(&self) -> String {
        match self {
            Caller::Anonymous => "anonymous".into(),
            Caller::Citizen { pseudonym } => format!("citizen:{pseudonym}"),
            Caller::Staff(s) => format!("staff:{}", s.name),
        }
    }

    /// The staff member, if the caller is one.
    pub fn staff(&self) -> Option<&StaffMember> {
        match self {
            Caller::Staff(s) => Some(s),
            _ => None,
        }
    }
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid or unknown bearer token")]
pub struct BadToken;

/// Issues and checks tokens.
#[derive(Clone)]
pub struct Authenticator {
    secret: Vec<u8>,
    staff: Vec<StaffMember>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("staff", &self.staff.len())
            .finish_non_exhaustive()
    }
}

/// Hex SHA-256 of a staff token, as written in the configuration.
pub fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Authenticator {
    pub fn new(secret: &[u8], staff: Vec<StaffMember>) -> Self {
        Authenticator {
            secret: secret.to_vec(),
            staff,
        }
    }

    fn mac(&self, label: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(label);
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    /// A fresh citizen token.
    pub fn issue_citizen_token(&self) -> String {
        let random: [u8; 18] = rand::random();
        let tag = self.mac(b"token", &random);
        format!(
            "vc1.{}.{}",
            URL_SAFE_NO_PAD.encode(random),
            URL_SAFE_NO_PAD.encode(&tag[..TAG_BYTES])
        )
    }

    /// The caller named by an `Authorization` header value (`None`: anonymous).
    pub fn caller(&self, authorization: Option<&str>) -> Result<Caller, BadToken> {
        let Some(value) = authorization else {
            return Ok(Caller::Anonymous);
        };
        let token = bearer_token(value).ok_or(BadToken)?;
        if let Some(rest) = token.strip_prefix("vc1.") {
            let (random, tag) = rest.split_once('.').ok_or(BadToken)?;
            let random = URL_SAFE_NO_PAD.decode(random).map_err(|_| BadToken)?;
            let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| BadToken)?;
            if tag.len() != TAG_BYTES {
                return Err(BadToken);
            }
            let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key");
            mac.update(b"token");
            mac.update(&random);
            mac.verify_truncated_left(&tag).map_err(|_| BadToken)?;
            let pseudonym = hex::encode(&self.mac(b"pseudonym", &random)[..12]);
            return Ok(Caller::Citizen { pseudonym });
        }
        let hash = sha256_hex(token);
        self.staff
            .iter()
            .find(|s| s.token_sha256.eq_ignore_ascii_case(&hash))
            .map(|s| Caller::Staff(s.clone()))
            .ok_or(BadToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::new(
            b"secret",
            vec![StaffMember {
                name: "agent-gignac".into(),
                token_sha256: sha256_hex("staff-token"),
                commune: Some("34114".into()),
            }],
        )
    }

    #[test]
    fn a_citizen_token_is_recognised_with_a_stable_pseudonym() {
        let a = auth();
        let t = a.issue_citizen_token();
        let header = format!("Bearer {t}");
        let c1 = a.caller(Some(&header)).unwrap();
        let c2 = a.caller(Some(&header)).unwrap();
        assert_eq!(c1, c2);
        assert!(matches!(c1, Caller::Citizen { .. }));
        assert_ne!(
            c1,
            a.caller(Some(&format!("Bearer {}", a.issue_citizen_token())))
                .unwrap()
        );
        assert!(
            !c1.actor().contains(&t[4..20]),
            "the pseudonym must not reveal the token"
        );
    }

    #[test]
    fn a_forged_or_foreign_token_is_refused() {
        let t = auth().issue_citizen_token();
        let other = Authenticator::new(b"another secret", vec![]);
        assert_eq!(other.caller(Some(&format!("Bearer {t}"))), Err(BadToken));
        let mut forged = t.clone();
        forged.pop();
        forged.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(
            auth().caller(Some(&format!("Bearer {forged}"))),
            Err(BadToken)
        );
        assert_eq!(auth().caller(Some("Basic abc")), Err(BadToken));
    }

    #[test]
    fn only_full_length_tags_are_accepted() {
        let a = auth();
        let token = a.issue_citizen_token();
        let (random, tag) = token["vc1.".len()..].split_once('.').unwrap();
        let tag = URL_SAFE_NO_PAD.decode(tag).unwrap();
        // Every one-byte tag: with prefixes accepted, one of these 256 got in.
        for byte in 0..=255u8 {
            let forged = format!("Bearer vc1.{random}.{}", URL_SAFE_NO_PAD.encode([byte]));
            assert_eq!(a.caller(Some(&forged)), Err(BadToken), "tag {byte}");
        }
        // The genuine tag cut short, or with a byte added, is no longer a token.
        for wrong in [&tag[..TAG_BYTES - 1], &[&tag[..], &[0][..]].concat()[..]] {
            let forged = format!("Bearer vc1.{random}.{}", URL_SAFE_NO_PAD.encode(wrong));
            assert_eq!(a.caller(Some(&forged)), Err(BadToken));
        }
        assert!(a.caller(Some(&format!("Bearer {token}"))).is_ok());
    }

    #[test]
    fn staff_are_found_by_the_hash_of_their_token() {
        let c = auth().caller(Some("Bearer staff-token")).unwrap();
        assert_eq!(c.staff().unwrap().commune.as_deref(), Some("34114"));
        assert_eq!(auth().caller(Some("Bearer wrong")), Err(BadToken));
        assert_eq!(auth().caller(None), Ok(Caller::Anonymous));
    }
}
