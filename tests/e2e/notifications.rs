//! E-mails to reporters through a real SMTP server (Python's `aiosmtpd` from PyPI, which
//! `.ci/run` installs; without it the test is skipped with a reason, and fails under
//! `VALLEE_REQUIRE_PYTHON`): received, closed with the town hall's note, none sent twice
//! across a restart, none after the reporter stopped them.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::helpers::*;
use crate::hub::*;

const PUBLIC_URL: &str = "https://hub.example.fr";

/// An SMTP server writing what it receives into a Maildir, killed on drop.
struct MailServer {
    child: Child,
    addr: std::net::SocketAddr,
    maildir: PathBuf,
}

impl Drop for MailServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MailServer {
    async fn start(dir: &Path) -> Option<MailServer> {
        let present = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        if !present {
            assert!(
                std::env::var("VALLEE_REQUIRE_PYTHON").is_err(),
                "VALLEE_REQUIRE_PYTHON is set but aiosmtpd is missing (pip install aiosmtpd)"
            );
            eprintln!("skipped: no aiosmtpd (pip install aiosmtpd)");
            return None;
        }
        let (addr, maildir) = (free_addr(), dir.join("maildir"));
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &addr.to_string()])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        eventually(Duration::from_secs(20), "the SMTP server", || async {
            TcpStream::connect(addr).is_ok()
        })
        .await;
        Some(MailServer {
            child,
            addr,
            maildir,
        })
    }

    /// Every message received: (To, Subject, body), decoded.
    fn received(&self) -> Vec<(String, String, String)> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        let mut mails: Vec<(std::time::SystemTime, String)> = entries
            .flatten()
            .map(|e| {
                (
                    e.metadata().unwrap().modified().unwrap(),
                    std::fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect();
        mails.sort();
        mails
            .into_iter()
            .map(|(_, raw)| {
                let raw = raw.replace("\r\n", "\n");
                let (headers, body) = raw.split_once("\n\n").unwrap();
                let header = |name: &str| {
                    headers
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                        .unwrap_or_default()
                        .to_string()
                };
                let subject = header("Subject");
                let subject = subject
                    .strip_prefix("=?UTF-8?B?")
                    .and_then(|s| s.strip_suffix("?="))
                    .map(|b| String::from_utf8(STANDARD.decode(b).unwrap()).unwrap())
                    .unwrap_or(subject);
                let body = STANDARD.decode(body.replace('\n', "").trim()).unwrap();
                (header("To"), subject, String::from_utf8(body).unwrap())
            })
            .collect()
    }
}

const SUBMIT: &str =
    "mutation($input: SubmitReportInput!) { submitReport(input: $input) { report { id } } }";
const STATUS: &str = "mutation($id: ID!, $input: UpdateReportStatusInput!) { updateReportStatus(id: $id, input: $input) { report { id } } }";

async fn report_with_email(hub: &Hub, email: &str) -> String {
    hub.ok(
        None,
        SUBMIT,
        json!({"input": {"serviceCode": "street-light", "description": "Lampadaire éteint",
            "lat": 43.6521, "long": 3.5512, "contact": {"email": email}}}),
    )
    .await["submitReport"]["report"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reporter_is_told_once_of_each_step_and_can_stop_the_messages() {
    let world = World::new(3).await;
    let Some(smtp) = MailServer::start(world.dir.path()).await else {
        return;
    };
    let config = format!(
        "\n[api.mail]\nsmtp_addr = \"{}\"\npublic_url = \"{PUBLIC_URL}\"\n",
        smtp.addr
    );
    let hub = Hub::start_with(&world, "hub", &config).await;

    // An address that would add a header is refused before anything is written.
    let hostile = hub
        .gql(
            None,
            SUBMIT,
            json!({"input": {"serviceCode": "street-light", "description": "x", "lat": 43.6521,
                "long": 3.5512, "contact": {"email": "a@example.fr\r\nBcc: all@example.fr"}}}),
        )
        .await;
    assert_eq!(code(&hostile), "BAD_USER_INPUT", "{hostile}");

    let id = report_with_email(&hub, "marie@example.fr").await;
    eventually(Duration::from_secs(30), "the acknowledgement", || async {
        smtp.received().len() == 1
    })
    .await;
    let (to, subject, body) = smtp.received()[0].clone();
    assert_eq!(to, "<marie@example.fr>");
    assert!(
        subject.contains("reçu : Éclairage public en panne"),
        "{subject}"
    );
    assert!(
        body.contains("Il est transmis à : Mairie de Gignac"),
        "{body}"
    );
    assert!(body.contains(&format!("{PUBLIC_URL}/mes-signalements?suivre={id}")));

    hub.ok(
        Some(GIGNAC_STAFF),
        STATUS,
        json!({"id": id, "input": {"status": "CLOSED", "substatus": "FIXED",
            "statusNotes": "Lampe changée le jour même."}}),
    )
    .await;
    eventually(Duration::from_secs(30), "the closure", || async {
        smtp.received().len() == 2
    })
    .await;
    let (_, subject, body) = smtp.received()[1].clone();
    assert!(subject.contains("clos : résolu"), "{subject}");
    assert!(body.contains("Lampe changée le jour même."), "{body}");

    // After a restart (the view rebuilt from the topic), nothing is sent again: the next
    // news is the only new message.
    hub.stop().await;
    let hub = Hub::start_with(&world, "hub-again", &config).await;
    hub.ok(
        Some(GIGNAC_STAFF),
        STATUS,
        json!({"id": id, "input": {"status": "OPEN", "substatus": "IN_PROGRESS",
            "statusNotes": "La lampe s'est rallumée puis éteinte : nous revenons."}}),
    )
    .await;
    eventually(Duration::from_secs(60), "the reopening", || async {
        smtp.received().len() >= 3
    })
    .await;
    let mails = smtp.received();
    assert_eq!(mails.len(), 3, "nothing sent twice: {mails:?}");
    assert!(mails[2].2.contains("nous revenons"));

    // The reporter stops the messages with the link of the last one.
    let link = mails[2]
        .2
        .lines()
        .find_map(|l| l.split(&format!("{PUBLIC_URL}/desabonnement")).nth(1))
        .unwrap()
        .trim()
        .to_string();
    let forged = hub
        .client
        .get(hub.url(&format!("/desabonnement?r={id}&t=AAAAAAAAAAAAAAAAAAAAAAAA")))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    let page = hub
        .client
        .get(hub.url(&format!("/desabonnement{link}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "a page asks to confirm");
    assert!(page.text().await.unwrap().contains("<form method=\"post\""));
    assert_eq!(
        hub.client
            .post(hub.url(&format!("/desabonnement{link}")))
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    hub.ok(
        Some(GIGNAC_STAFF),
        STATUS,
        json!({"id": id, "input": {"status": "CLOSED", "substatus": "FIXED"}}),
    )
    .await;
    // Another reporter's news comes after: once it is in, the first one's would have been.
    report_with_email(&hub, "paul@example.fr").await;
    eventually(Duration::from_secs(30), "the other reporter's", || async {
        smtp.received().iter().any(|m| m.0 == "<paul@example.fr>")
    })
    .await;
    let to_marie = smtp
        .received()
        .iter()
        .filter(|m| m.0 == "<marie@example.fr>")
        .count();
    assert_eq!(to_marie, 3, "no message after she stopped them");
    let (status, metrics) = http_get(hub.http, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("vallee_mail_sent_total 2"),
        "this process sent the last two"
    );
    hub.stop().await;
}
