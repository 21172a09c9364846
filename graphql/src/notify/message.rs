//! The e-mails a reporter receives, in French: received, a new step, closed; each with the
//! town hall's note, a link to follow the report and one to stop the messages.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use chrono_tz::Europe::Paris;
use vallee_schemas::citizen::{ReportStatus, Substatus};

/// What happened to a report.
#[derive(Debug, Clone, PartialEq)]
pub struct News {
    pub report_id: String,
    pub service: String,
    pub commune: String,
    pub agency: String,
    /// The first entry of the history: the report was received.
    pub received: bool,
    pub status: ReportStatus,
    pub substatus: Option<Substatus>,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
    pub expected: DateTime<Utc>,
}

/// Who writes, and where the links point.
#[derive(Debug, Clone)]
pub struct Letterhead<'a> {
    pub from_name: &'a str,
    pub from_address: &'a str,
    pub public_url: &'a str,
}

fn step(substatus: Option<Substatus>) -> &'static str {
    match substatus {
        Some(Substatus::Acknowledged) => "pris en compte",
        Some(Substatus::InProgress) => "en cours de traitement",
        Some(Substatus::Scheduled) => "une intervention est programmée",
        Some(Substatus::Fixed) => "résolu",
        Some(Substatus::Duplicate) => "déjà signalé par ailleurs (doublon)",
        Some(Substatus::NotResponsible) => "hors de notre compétence",
        None => "mis à jour",
    }
}

impl News {
    pub fn subject(&self) -> String {
        let short = &self.report_id[..self.report_id.len().min(8)];
        if self.received {
            format!("Signalement {short} reçu : {}", self.service)
        } else if self.status == ReportStatus::Closed {
            format!("Signalement {short} clos : {}", step(self.substatus))
        } else {
            format!("Signalement {short} : {}", step(self.substatus))
        }
    }

    pub fn body(&self, head: &Letterhead<'_>, unsubscribe: &str) -> String {
        let date = |t: DateTime<Utc>| t.with_timezone(&Paris).format("%d/%m/%Y").to_string();
        let mut text = String::from("Bonjour,\n\n");
        if self.received {
            text.push_str(&format!(
                "Nous avons bien reçu votre signalement « {} » à {}. Il est transmis à : {}, qui doit y répondre avant le {}.\n",
                self.service,
                self.commune,
                self.agency,
                date(self.expected)
            ));
        } else if self.status == ReportStatus::Closed {
            text.push_str(&format!(
                "Votre signalement « {} » à {} est clos le {} : {}.\n",
                self.service,
                self.commune,
                date(self.at),
                step(self.substatus)
            ));
        } else {
            text.push_str(&format!(
                "Votre signalement « {} » à {} avance : {}.\n",
                self.service,
                self.commune,
                step(self.substatus)
            ));
        }
        if let Some(note) = &self.note {
            text.push_str(&format!("\nMessage de {} :\n{note}\n", self.agency));
        }
        let base = head.public_url.trim_end_matches('/');
        text.push_str(&format!(
            "\nSuivre ce signalement : {base}/mes-signalements?suivre={}\n\n{}\n\n--\nVous recevez ce message parce que vous avez laissé votre adresse avec ce signalement. \
             Pour ne plus recevoir de message à son sujet : {unsubscribe}\n",
            self.report_id, head.from_name
        ));
        text
    }

    /// The whole message: headers, then the body in base64 (CRLF lines).
    pub fn message(&self, head: &Letterhead<'_>, to: &str, id: &str, unsubscribe: &str) -> String {
        compose(
            head,
            to,
            id,
            &self.subject(),
            &self.body(head, unsubscribe),
            Some(unsubscribe),
        )
    }
}

/// A plain-text message from `head` to `to`: headers, then `body` in base64 (CRLF lines);
/// with a stop link when the reader can stop such messages.
pub fn compose(
    head: &Letterhead<'_>,
    to: &str,
    id: &str,
    subject: &str,
    body: &str,
    unsubscribe: Option<&str>,
) -> String {
    let body = STANDARD.encode(body.replace('\n', "\r\n"));
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    let domain = head.from_address.rsplit('@').next().unwrap_or("vallee");
    let mut headers = vec![
        format!("From: {} <{}>", encoded(head.from_name), head.from_address),
        format!("To: <{to}>"),
        format!("Subject: {}", encoded(subject)),
        format!("Date: {}", Utc::now().to_rfc2822()),
        // The same news always has the same id: a relay or a reader can tell a message
        // sent again after a crash.
        format!("Message-ID: <{id}@{domain}>"),
    ];
    if let Some(link) = unsubscribe {
        headers.push(format!("List-Unsubscribe: <{link}>"));
        headers.push("List-Unsubscribe-Post: List-Unsubscribe=One-Click".into());
    }
    headers.extend([
        "Auto-Submitted: auto-generated".into(),
        "MIME-Version: 1.0".into(),
        "Content-Type: text/plain; charset=utf-8".into(),
        "Content-Transfer-Encoding: base64".into(),
        String::new(),
        lines.join("\r\n"),
    ]);
    headers.join("\r\n")
}

/// A header text in RFC 2047's encoded-word form when it is not plain ASCII.
fn encoded(text: &str) -> String {
    if text.is_ascii() && !text.contains(['\r', '\n']) {
        text.to_string()
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            STANDARD.encode(text.replace(['\r', '\n'], " "))
        )
    }
}

/// Whether `address` can go in `RCPT TO` and `To:` as is: one `@`, no space, no control
/// character, nothing that would end or add a header or a command.
pub fn deliverable(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    address.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && address.chars().all(|c| {
            c.is_ascii_graphic()
                && !matches!(
                    c,
                    '<' | '>' | '(' | ')' | ',' | ';' | ':' | '\\' | '"' | '[' | ']'
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn news(received: bool) -> News {
        News {
            report_id: "0f8e6d4c-aaaa".into(),
            service: "Éclairage public en panne".into(),
            commune: "Gignac".into(),
            agency: "Mairie de Gignac".into(),
            received,
            status: if received {
                ReportStatus::Open
            } else {
                ReportStatus::Closed
            },
            substatus: (!received).then_some(Substatus::Fixed),
            note: (!received).then(|| "Lampe changée.".to_string()),
            at: "2026-12-07T10:00:00Z".parse().unwrap(),
            expected: "2026-12-17T10:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn a_message_says_what_happened_with_the_note_and_both_links() {
        let head = Letterhead {
            from_name: "Communauté de communes Vallée de l'Hérault",
            from_address: "ne-pas-repondre@cc-vallee-herault.fr",
            public_url: "https://hub.example.fr/",
        };
        let closed = news(false);
        assert_eq!(closed.subject(), "Signalement 0f8e6d4c clos : résolu");
        let body = closed.body(&head, "https://hub.example.fr/desabonnement?r=x&t=y");
        assert!(body.contains("est clos le 07/12/2026 : résolu"));
        assert!(body.contains("Message de Mairie de Gignac :\nLampe changée."));
        assert!(body.contains("https://hub.example.fr/mes-signalements?suivre=0f8e6d4c-aaaa"));
        assert!(body.contains("https://hub.example.fr/desabonnement?r=x&t=y"));
        let received = news(true).body(&head, "u");
        assert!(received.contains("doit y répondre avant le 17/12/2026"));

        let message = closed.message(&head, "habitant@example.fr", "n-1", "https://u");
        let (headers, body) = message.split_once("\r\n\r\n").unwrap();
        assert!(headers.contains("Subject: =?UTF-8?B?"));
        assert!(headers.contains("Message-ID: <n-1@cc-vallee-herault.fr>"));
        assert!(headers.contains("List-Unsubscribe: <https://u>"));
        assert!(body.lines().all(|l| l.len() <= 76 && !l.starts_with('.')));
        let decoded = STANDARD.decode(body.replace("\r\n", "")).unwrap();
        assert!(
            String::from_utf8(decoded)
                .unwrap()
                .contains("Lampe changée.")
        );
    }

    #[test]
    fn only_a_plain_address_is_written_into_the_envelope_and_headers() {
        assert!(deliverable("marie.dupont+velo@example.fr"));
        for hostile in [
            "marie@example.fr\r\nBcc: all@example.fr",
            "<marie@example.fr>",
            "marie@example",
            "marie example@example.fr",
            "@example.fr",
            "marie@@example.fr",
            "marie@example.fr>\r\nRCPT TO:<x@y.fr",
        ] {
            assert!(!deliverable(hostile), "{hostile:?}");
        }
    }
}
