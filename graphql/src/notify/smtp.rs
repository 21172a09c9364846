//! Just enough SMTP (RFC 5321) to hand a message to a relay: greeting, EHLO, MAIL FROM,
//! RCPT TO, DATA, QUIT, every step bounded in time. The message's body is base64, so no
//! line of it can be taken for the end of the data.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Every reply, and the whole exchange, within this.
const STEP: Duration = Duration::from_secs(30);

/// Hands `message` (headers and body, CRLF lines) from `from` to `to` to the relay at
/// `addr`; `Ok` once the relay took responsibility for it (250 after the data).
pub async fn send(
    addr: &str,
    helo: &str,
    from: &str,
    to: &str,
    message: &str,
) -> Result<(), String> {
    tokio::time::timeout(STEP * 4, exchange(addr, helo, from, to, message))
        .await
        .map_err(|_| format!("{addr}: the relay took too long"))?
}

async fn exchange(
    addr: &str,
    helo: &str,
    from: &str,
    to: &str,
    message: &str,
) -> Result<(), String> {
    let stream = tokio::time::timeout(STEP, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("{addr}: no answer"))?
        .map_err(|e| format!("{addr}: {e}"))?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    expect(&mut read, 2, "greeting").await?;
    for (command, what) in [
        (format!("EHLO {helo}\r\n"), "EHLO"),
        (format!("MAIL FROM:<{from}>\r\n"), "MAIL FROM"),
        (format!("RCPT TO:<{to}>\r\n"), "RCPT TO"),
    ] {
        write
            .write_all(command.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        expect(&mut read, 2, what).await?;
    }
    write
        .write_all(b"DATA\r\n")
        .await
        .map_err(|e| e.to_string())?;
    expect(&mut read, 3, "DATA").await?;
    write
        .write_all(message.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    write
        .write_all(b"\r\n.\r\n")
        .await
        .map_err(|e| e.to_string())?;
    expect(&mut read, 2, "the message").await?;
    // The relay has it; a failed goodbye changes nothing.
    let _ = write.write_all(b"QUIT\r\n").await;
    Ok(())
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
