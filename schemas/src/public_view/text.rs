//! E-mail addresses and phone numbers typed in free text, masked for the public.
//!
//! Citizens leave their contact in the form's contact fields (kept in the restricted store,
//! never public), but some type it in a report's description, an idea or a comment ("call
//! me at 06 12 34 56 78"), and staff sometimes quote one in a status note. Every public
//! view of free text goes through [`mask_contacts`]; staff of the text's scope read it as
//! typed.
//!
//! What is masked:
//! - an e-mail address: `local@domain.tld` (ASCII letters, digits and `._%+-` before the
//!   `@`, a dotted domain after, a top-level domain of two letters or more);
//! - a French phone number: ten digits starting with `0` and a non-zero digit, or the
//!   country code `+33`/`0033` (an optional `(0)`) and nine digits, written in one run or
//!   in pairs separated by spaces, dots or dashes (`06 12 34 56 78`, `06.12.34.56.78`,
//!   `+33 6 12 34 56 78`, `+33 (0)6 12 34 56 78`, `0612345678`);
//! - any other international number: `+` or `00`, a country code and at least seven more
//!   digits, single spaces, dots or dashes between them.
//!
//! A number must stand alone (no digit right before or after), so a longer reference
//! (`n° 2026112812345678`) is left as it is.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// What replaces an e-mail address.
pub const EMAIL_MASK: &str = "[courriel masqué]";
/// What replaces a phone number.
pub const PHONE_MASK: &str = "[téléphone masqué]";

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}")
        .expect("valid regex")
});

static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    let french = r"(?:(?:\+|00)\s?33[\s.\-]?(?:\(0\)[\s.\-]?)?|0)[1-9](?:[\s.\-]?\d{2}){4}";
    let international = r"(?:\+|00)\d{1,3}(?:[\s.\-]?\d){7,12}";
    Regex::new(&format!("{french}|{international}")).expect("valid regex")
});

/// `text` with every e-mail address and phone number replaced by [`EMAIL_MASK`] or
/// [`PHONE_MASK`]; borrowed when there is none.
pub fn mask_contacts(text: &str) -> Cow<'_, str> {
    // Neither can appear without an `@` or six digits: the common case costs a scan.
    let has_at = text.contains('@');
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    if !has_at && digits < 9 {
        return Cow::Borrowed(text);
    }
    let text = if has_at {
        EMAIL.replace_all(text, EMAIL_MASK)
    } else {
        Cow::Borrowed(text)
    };
    if digits < 9 {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut changed = false;
    for m in PHONE.find_iter(&text) {
        let before = text[..m.start()].chars().next_back();
        let after = text[m.end()..].chars().next();
        if before.is_some_and(|c| c.is_ascii_digit()) || after.is_some_and(|c| c.is_ascii_digit()) {
            continue;
        }
        out.push_str(&text[at..m.start()]);
        out.push_str(PHONE_MASK);
        at = m.end();
        changed = true;
    }
    if !changed {
        return text;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_phone_numbers_are_masked_however_written() {
        for number in [
            "06 12 34 56 78",
            "+33 6 12 34 56 78",
            "0612345678",
            "+33612345678",
            "06.12.34.56.78",
            "06-12-34-56-78",
            "04 67 57 04 50",
            "0033 6 12 34 56 78",
            "+33 (0)6 12 34 56 78",
            "+33 612 345 678",
        ] {
            let text = format!("Rappelez-moi au {number}, merci.");
            assert_eq!(
                mask_contacts(&text),
                format!("Rappelez-moi au {PHONE_MASK}, merci."),
                "{number}"
            );
        }
        assert_eq!(mask_contacts("06 12 34 56 78"), PHONE_MASK);
        assert_eq!(
            mask_contacts("mon numéro : +44 20 7946 0958"),
            format!("mon numéro : {PHONE_MASK}")
        );
    }

    #[test]
    fn e_mail_addresses_are_masked() {
        assert_eq!(
            mask_contacts("écrivez à prenom.nom@example.fr ou Jean-Luc+vallee@mairie-gignac.fr."),
            format!("écrivez à {EMAIL_MASK} ou {EMAIL_MASK}.")
        );
        assert_eq!(
            mask_contacts("prenom.nom@example.fr / 06 12 34 56 78"),
            format!("{EMAIL_MASK} / {PHONE_MASK}")
        );
    }

    #[test]
    fn ordinary_text_is_left_as_it_is() {
        for text in [
            "Lampadaire éteint rue du Pont, depuis le 28/11/2026 à 21 h 30.",
            "Le conteneur n° 2026112812345678 déborde.",
            "Réunion le 2026-11-28 à 18:30, salle 12, 34 places.",
            "Une adresse @mairie sans domaine, un prix de 1 234,56 €.",
            "Pont du Diable: 43.6521, 3.5512",
            "",
        ] {
            assert!(
                matches!(mask_contacts(text), Cow::Borrowed(t) if t == text),
                "{text}"
            );
        }
    }
}
