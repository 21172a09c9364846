//! E-mails to reporters through a real SMTP server (Python's `aiosmtpd` from PyPI, which
//! `.ci/run` installs; without it the test is skipped with a reason, and fails under
//! `VALLEE_REQUIRE_PYTHON`): received, closed with the town hall's note, none sent twice
//! across a restart, none after the reporter stopped them; over STARTTLS with a login to a
//! relay whose certificate an authority of the town signed (made with `openssl`).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::helpers::*;
use crate::hub::*;

pub const PUBLIC_URL: &str = "https://hub.example.fr";

/// An SMTP server writing what it receives into a Maildir, killed on drop.
pub struct MailServer {
    child: Child,
    pub addr: std::net::SocketAddr,
    maildir: PathBuf,
}

impl Drop for MailServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MailServer {
    pub async fn start(dir: &Path) -> Option<MailServer> {
        let mut check = Command::new("python3");
        check.args(["-c", "import aiosmtpd"]);
        if !installed(&mut check, "aiosmtpd (pip install aiosmtpd)") {
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

    /// The same, speaking STARTTLS only (a certificate for `localhost` signed by an
    /// authority of its own, both made by the `openssl` command) and taking only `user` /
    /// `password` after it; the authority's PEM file too.
    async fn start_tls(dir: &Path, user: &str, password: &str) -> Option<(MailServer, PathBuf)> {
        // Skipped, or required, as the plain server is (that one stops at once).
        MailServer::start(dir).await?;
        let mut check = Command::new("openssl");
        check.arg("version");
        if !installed(
            &mut check,
            "the openssl command, which makes the relay's certificate (apt install openssl)",
        ) {
            return None;
        }
        // A town's own authority, and the relay's certificate it signed for `localhost`.
        let file = |name: &str| dir.join(name);
        let (ca, ca_key) = (file("ca.pem"), file("ca-key.pem"));
        let (cert, key, request) = (file("relay.pem"), file("relay-key.pem"), file("relay.csr"));
        std::fs::write(
            file("relay.ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        let path = |p: &PathBuf| p.to_str().unwrap().to_string();
        for args in [
            vec![
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ]
            .into_iter()
            .map(String::from)
            .chain(["-subj".into(), "/CN=Autorite de test".into()])
            .chain(["-keyout".into(), path(&ca_key), "-out".into(), path(&ca)])
            .collect::<Vec<String>>(),
            [
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
            ]
            .into_iter()
            .map(String::from)
            .chain(["-keyout".into(), path(&key), "-out".into(), path(&request)])
            .collect(),
            ["x509", "-req", "-days", "2", "-CAcreateserial"]
                .into_iter()
                .map(String::from)
                .chain(["-in".into(), path(&request), "-CA".into(), path(&ca)])
                .chain(["-CAkey".into(), path(&ca_key), "-out".into(), path(&cert)])
                .chain(["-extfile".into(), path(&file("relay.ext"))])
                .collect(),
        ] {
            let made = Command::new("openssl")
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(made, "openssl {args:?}");
        }
        let (addr, maildir) = (free_addr(), dir.join("maildir-tls"));
        let script = r#"
import ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword
host, port, maildir, cert, key, user, password = sys.argv[1:8]
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
def check(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == user.encode() and data.password == password.encode()
    return AuthResult(success=ok)
relay = Controller(Mailbox(maildir), hostname=host, port=int(port), tls_context=context,
                   require_starttls=True, auth_required=True, auth_require_tls=True,
                   authenticator=check)
relay.start()
while True:
    time.sleep(3600)
"#;
        let child = Command::new("python3")
            .args(["-c", script])
            .args(["127.0.0.1", &addr.port().to_string()])
            .arg(&maildir)
            .arg(&cert)
            .arg(&key)
            .args([user, password])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        eventually(Duration::from_secs(20), "the TLS SMTP server", || async {
            TcpStream::connect(addr).is_ok()
        })
        .await;
        let server = MailServer {
            child,
            addr,
            maildir,
        };
        Some((server, ca))
    }

    /// Every message received: (To, Subject, body), decoded.
    pub fn received(&self) -> Vec<(String, String, String)> {
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
    // The count moves once the relay has answered, which may be just after the relay
    // shows the message: waited for, and never past two.
    eventually(
        Duration::from_secs(10),
        "this process counting the last two sent",
        || async {
            let (status, metrics) = http_get(hub.http, "/metrics").unwrap();
            assert_eq!(status, 200);
            metrics.contains("vallee_mail_sent_total 2")
        },
    )
    .await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_starttls_with_a_login_the_relay_takes_the_message_and_a_wrong_password_sends_none() {
    let world = World::new(1).await;
    let Some((smtp, ca)) =
        MailServer::start_tls(world.dir.path(), "vallee", "mot-de-passe-du-relais").await
    else {
        return;
    };
    let config = |password: &str| {
        format!(
            "\n[api.mail]\nsmtp_addr = \"localhost:{}\"\ntls = \"starttls\"\nusername = \"vallee\"\n\
             password = \"{password}\"\nca_file = \"{}\"\npublic_url = \"{PUBLIC_URL}\"\n",
            smtp.addr.port(),
            ca.display()
        )
    };
    // A wrong password: the relay refuses, nothing is received, the failure is counted.
    let hub = Hub::start_with(&world, "hub-wrong", &config("pas-le-bon")).await;
    report_with_email(&hub, "paul@example.fr").await;
    eventually(Duration::from_secs(60), "the refusal counted", || async {
        let (_, metrics) = http_get(hub.http, "/metrics").unwrap();
        metrics
            .lines()
            .any(|l| l.starts_with("vallee_mail_failed_total ") && !l.ends_with(" 0"))
    })
    .await;
    assert!(smtp.received().is_empty());
    hub.stop().await;

    // The right one: the acknowledgement arrives, over TLS (the relay takes nothing else).
    let hub = Hub::start_with(&world, "hub", &config("mot-de-passe-du-relais")).await;
    report_with_email(&hub, "marie@example.fr").await;
    eventually(Duration::from_secs(60), "the messages over TLS", || async {
        smtp.received()
            .iter()
            .any(|(to, _, _)| to == "<marie@example.fr>")
    })
    .await;
    hub.stop().await;
}
