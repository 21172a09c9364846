//! Just enough SMTP (RFC 5321) to hand a message to a relay: greeting, EHLO, STARTTLS (RFC
//! 3207) or TLS from the first byte (RFC 8314), AUTH PLAIN (RFC 4954), MAIL FROM, RCPT TO,
//! DATA, QUIT, every step bounded in time. The message's body is base64, so no line of it
//! can be taken for the end of the data. Credentials never travel in clear: the options
//! refuse a login without TLS, and the relay's certificate is checked against the system's
//! roots (and `ca_file`'s) for the relay's host name.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::options::{MailOptions, MailSecurity};

/// Every reply, and the whole exchange, within this.
const STEP: Duration = Duration::from_secs(30);

/// Hands `message` (headers and body, CRLF lines) from the configured sender to `to`
/// through the relay of `mail`; `Ok` once the relay took responsibility for it (250 after
/// the data).
pub async fn send(mail: &MailOptions, to: &str, message: &str) -> Result<(), String> {
    let addr = &mail.smtp_addr;
    tokio::time::timeout(STEP * 5, exchange(mail, to, message))
        .await
        .map_err(|_| format!("{addr}: the relay took too long"))?
}

/// The TLS settings of this process's relay (the system's roots, and `ca_file`'s).
fn tls_config(mail: &MailOptions) -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            let system = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(system.certs);
            if !mail.ca_file.is_empty() {
                let certs = CertificateDer::pem_file_iter(&mail.ca_file)
                    .map_err(|e| format!("mail.ca_file {}: {e}", mail.ca_file))?;
                for cert in certs {
                    let cert = cert.map_err(|e| format!("mail.ca_file {}: {e}", mail.ca_file))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("mail.ca_file {}: {e}", mail.ca_file))?;
                }
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

/// The relay's host, as its certificate must name it.
fn server_name(addr: &str) -> Result<rustls::pki_types::ServerName<'static>, String> {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| format!("{addr}: {e}"))
}

async fn handshake(
    mail: &MailOptions,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let connector = tokio_rustls::TlsConnector::from(tls_config(mail)?);
    let name = server_name(&mail.smtp_addr)?;
    tokio::time::timeout(STEP, connector.connect(name, tcp))
        .await
        .map_err(|_| format!("{}: no TLS handshake", mail.smtp_addr))?
        .map_err(|e| format!("{}: TLS: {e}", mail.smtp_addr))
}

async fn exchange(mail: &MailOptions, to: &str, message: &str) -> Result<(), String> {
    let addr = &mail.smtp_addr;
    let tcp = tokio::time::timeout(STEP, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("{addr}: no answer"))?
        .map_err(|e| format!("{addr}: {e}"))?;
    match mail.tls {
        MailSecurity::None => talk(BufReader::new(tcp), mail, to, message).await,
        MailSecurity::Tls => {
            let tls = handshake(mail, tcp).await?;
            talk(BufReader::new(tls), mail, to, message).await
        }
        MailSecurity::Starttls => {
            let mut plain = BufReader::new(tcp);
            expect(&mut plain, 2, "greeting").await?;
            command(&mut plain, &format!("EHLO {}\r\n", mail.helo), 2, "EHLO").await?;
            command(&mut plain, "STARTTLS\r\n", 2, "STARTTLS").await?;
            let tls = handshake(mail, plain.into_inner()).await?;
            // A new conversation over TLS: no greeting, EHLO again.
            after_greeting(BufReader::new(tls), mail, to, message).await
        }
    }
}

async fn talk<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: BufReader<S>,
    mail: &MailOptions,
    to: &str,
    message: &str,
) -> Result<(), String> {
    expect(&mut s, 2, "greeting").await?;
    after_greeting(s, mail, to, message).await
}

async fn after_greeting<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: BufReader<S>,
    mail: &MailOptions,
    to: &str,
    message: &str,
) -> Result<(), String> {
    command(&mut s, &format!("EHLO {}\r\n", mail.helo), 2, "EHLO").await?;
    if !mail.username.is_empty() {
        let plain = format!("\0{}\0{}", mail.username, mail.password.expose());
        let encoded = base64::engine::general_purpose::STANDARD.encode(plain);
        command(&mut s, &format!("AUTH PLAIN {encoded}\r\n"), 2, "AUTH").await?;
    }
    command(
        &mut s,
        &format!("MAIL FROM:<{}>\r\n", mail.from_address),
        2,
        "MAIL FROM",
    )
    .await?;
    command(&mut s, &format!("RCPT TO:<{to}>\r\n"), 2, "RCPT TO").await?;
    command(&mut s, "DATA\r\n", 3, "DATA").await?;
    let write = |e: std::io::Error| e.to_string();
    s.write_all(message.as_bytes()).await.map_err(write)?;
    s.write_all(b"\r\n.\r\n").await.map_err(write)?;
    s.flush().await.map_err(write)?;
    expect(&mut s, 2, "the message").await?;
    // The relay has it; a failed goodbye changes nothing.
    let _ = s.write_all(b"QUIT\r\n").await;
    let _ = s.flush().await;
    Ok(())
}

/// Sends one command line and checks the reply's class.
async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    line: &str,
    class: u8,
    what: &str,
) -> Result<(), String> {
    s.write_all(line.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    expect(s, class, what).await
}

/// Reads one reply (all its lines) and checks its class (2: done, 3: go on).
async fn expect<R: AsyncBufReadExt + Unpin>(
    read: &mut R,
    class: u8,
    what: &str,
) -> Result<(), String> {
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(STEP, read.read_line(&mut line))
            .await
            .map_err(|_| format!("{what}: no reply"))?
            .map_err(|e| format!("{what}: {e}"))?;
        if n == 0 {
            return Err(format!("{what}: the relay closed the connection"));
        }
        let bytes = line.as_bytes();
        if bytes.len() < 4 || !bytes[..3].iter().all(u8::is_ascii_digit) {
            return Err(format!("{what}: not an SMTP reply: {}", line.trim_end()));
        }
        if bytes[3] == b'-' {
            continue; // a line of a multi-line reply
        }
        return if bytes[0] == b'0' + class {
            Ok(())
        } else {
            Err(format!("{what} refused: {}", line.trim_end()))
        };
    }
}
