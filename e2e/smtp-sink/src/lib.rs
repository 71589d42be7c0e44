//! A loopback SMTP server for tests.
//!
//! Identity's courier sends real mail over SMTP; the tests (identity's integration suite and the
//! browser journey in `e2e/`) point it at this sink and read the codes and links out of what
//! arrives. It speaks just enough ESMTP for `lettre` and most clients (EHLO/HELO, AUTH PLAIN/LOGIN
//! accepting any credentials, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no STARTTLS), keeps every
//! message in memory, decodes quoted-printable and base64 bodies and RFC 2047 subjects, and can be
//! told to refuse service to simulate an outage.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sink = portcullis_smtp_sink::SmtpSink::start().await?;
//! // configure the sender with sink.connection_uri() ...
//! let mail = sink.wait_for("ada@example.com", std::time::Duration::from_secs(10)).await?;
//! assert!(mail.subject.contains("code"));
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Largest message the sink accepts; anything bigger is answered with 552.
const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;

/// One received message, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Envelope sender (`MAIL FROM`).
    pub from: String,
    /// Envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The `Subject` header, RFC 2047 encoded words decoded.
    pub subject: String,
    /// The plain-text body (the `text/plain` part of a multipart message; the HTML part when that
    /// is all there is), transfer encoding decoded.
    pub body: String,
    /// The `text/html` part, if any, decoded.
    pub html: Option<String>,
    /// All headers of the top-level entity, unfolded, in order.
    pub headers: Vec<(String, String)>,
    /// The message as received (after dot-unstuffing).
    pub raw: String,
}

impl Message {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why [`SmtpSink::wait_for`] gave up.
#[derive(Debug)]
pub struct WaitTimeout {
    pub recipient: String,
    /// Recipients of every message received so far, to make a failing test readable.
    pub seen: Vec<String>,
}

impl std::fmt::Display for WaitTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no mail for {} arrived in time; mail seen for: {:?}",
            self.recipient, self.seen
        )
    }
}

impl std::error::Error for WaitTimeout {}

impl From<WaitTimeout> for io::Error {
    fn from(e: WaitTimeout) -> Self {
        io::Error::new(io::ErrorKind::TimedOut, e)
    }
}

#[derive(Default)]
struct State {
    messages: Vec<Message>,
    /// Indexes into `messages` already handed out by `wait_for`.
    taken: HashSet<usize>,
}

struct Shared {
    state: Mutex<State>,
    refusing: AtomicBool,
    refused: AtomicUsize,
    /// Bumped on every event (message stored, connection refused) so waiters re-check.
    events: watch::Sender<u64>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock can only come from a bug in this file; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bump(&self) {
        self.events.send_modify(|n| *n += 1);
    }
}

/// A running sink. Dropping it stops accepting connections.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl SmtpSink {
    /// Listens on `127.0.0.1:0`.
    pub async fn start() -> io::Result<Self> {
        Self::bind("127.0.0.1:0".parse().map_err(io::Error::other)?).await
    }

    /// Listens on the given address (a fixed port lets a test stop a sink and start another one
    /// in its place).
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (events, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            refusing: AtomicBool::new(false),
            refused: AtomicUsize::new(0),
            events,
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A Kratos-style `courier.smtp.connection_uri` for this sink (plain SMTP, no STARTTLS).
    pub fn connection_uri(&self) -> String {
        format!("smtp://{}/?disable_starttls=true", self.addr)
    }

    /// While `true`, every new connection is greeted with `421` and closed, and sessions already
    /// open get `421` on their next command: what a client sees from a mail server that is down
    /// or overloaded.
    pub fn set_refusing(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
    }

    /// How many connections or commands were refused so far.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` refusals happened; `false` on timeout.
    pub async fn wait_for_refusals(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, || (self.refused() >= n).then_some(()))
            .await
            .is_some()
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        self.shared.state().messages.clone()
    }

    /// Waits for the oldest message to `recipient` (case-insensitive) that no earlier `wait_for`
    /// returned, and marks it as taken.
    pub async fn wait_for(
        &self,
        recipient: &str,
        timeout: Duration,
    ) -> Result<Message, WaitTimeout> {
        let found = self
            .wait_until(timeout, || {
                let mut state = self.shared.state();
                let index = state.messages.iter().enumerate().position(|(i, m)| {
                    !state.taken.contains(&i)
                        && m.to.iter().any(|t| t.eq_ignore_ascii_case(recipient))
                })?;
                state.taken.insert(index);
                Some(state.messages[index].clone())
            })
            .await;
        found.ok_or_else(|| WaitTimeout {
            recipient: recipient.to_owned(),
            seen: self.messages().into_iter().flat_map(|m| m.to).collect(),
        })
    }

    async fn wait_until<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let mut events = self.shared.events.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            events.borrow_and_update();
            if let Some(found) = check() {
                return Some(found);
            }
            match tokio::time::timeout_at(deadline, events.changed()).await {
                Ok(Ok(())) => continue,
                _ => return check(),
            }
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            // A client hanging up mid-session is not the sink's problem.
            let _ = session(stream, &shared).await;
        });
    }
}

#[derive(Default)]
struct Envelope {
    from: Option<String>,
    to: Vec<String>,
}

async fn session(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    if shared.refusing.load(Ordering::SeqCst) {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        shared.bump();
        write
            .write_all(b"421 4.3.2 smtp-sink: service not available\r\n")
            .await?;
        return write.shutdown().await;
    }
    write.write_all(b"220 smtp-sink ESMTP ready\r\n").await?;
    let mut envelope = Envelope::default();
    let mut line = String::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end_matches(['\r', '\n']);
        let verb = command
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        if shared.refusing.load(Ordering::SeqCst) && verb != "QUIT" {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            shared.bump();
            write
                .write_all(b"421 4.3.2 smtp-sink: service not available\r\n")
                .await?;
            return write.shutdown().await;
        }
        let argument = command.get(verb.len()..).unwrap_or_default().trim();
        match verb.as_str() {
            "EHLO" => {
                write
                    .write_all(b"250-smtp-sink\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 10485760\r\n")
                    .await?
            }
            "HELO" => write.write_all(b"250 smtp-sink\r\n").await?,
            "AUTH" => {
                let mut parts = argument.split_whitespace();
                let mechanism = parts.next().unwrap_or_default().to_ascii_uppercase();
                let initial = parts.next();
                let challenges: &[&[u8]] = match (mechanism.as_str(), initial) {
                    ("PLAIN", Some(_)) => &[],
                    ("PLAIN", None) => &[b"334 \r\n"],
                    ("LOGIN", Some(_)) => &[b"334 UGFzc3dvcmQ6\r\n"],
                    ("LOGIN", None) => &[b"334 VXNlcm5hbWU6\r\n", b"334 UGFzc3dvcmQ6\r\n"],
                    _ => {
                        write.write_all(b"504 5.5.4 unrecognised authentication type\r\n").await?;
                        continue;
                    }
                };
                for challenge in challenges {
                    write.write_all(challenge).await?;
                    line.clear();
                    if read.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                }
                write.write_all(b"235 2.7.0 authentication succeeded\r\n").await?
            }
            "MAIL" => {
                envelope = Envelope { from: Some(angle_address(argument)), to: Vec::new() };
                write.write_all(b"250 2.1.0 OK\r\n").await?
            }
            "RCPT" => {
                if envelope.from.is_none() {
                    write.write_all(b"503 5.5.1 MAIL first\r\n").await?;
                } else {
                    envelope.to.push(angle_address(argument));
                    write.write_all(b"250 2.1.5 OK\r\n").await?
                }
            }
            "DATA" => {
                if envelope.to.is_empty() {
                    write.write_all(b"503 5.5.1 RCPT first\r\n").await?;
                    continue;
                }
                write.write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n").await?;
                let Some(raw) = read_data(&mut read).await? else {
                    write.write_all(b"552 5.3.4 message too big\r\n").await?;
                    envelope = Envelope::default();
                    continue;
                };
                let envelope = std::mem::take(&mut envelope);
                let message = parse_message(envelope.from.unwrap_or_default(), envelope.to, raw);
                shared.state().messages.push(message);
                shared.bump();
                write.write_all(b"250 2.0.0 OK queued\r\n").await?
            }
            "RSET" => {
                envelope = Envelope::default();
                write.write_all(b"250 2.0.0 OK\r\n").await?
            }
            "NOOP" => write.write_all(b"250 2.0.0 OK\r\n").await?,
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return write.shutdown().await;
            }
            "STARTTLS" => write.write_all(b"454 4.7.0 TLS not available\r\n").await?,
            _ => write.write_all(b"502 5.5.2 command not recognised\r\n").await?,
        }
    }
}

/// `FROM:<a@b> SIZE=12` → `a@b`.
fn angle_address(argument: &str) -> String {
    let value = argument.split_once(':').map_or(argument, |(_, v)| v).trim();
    match (value.find('<'), value.find('>')) {
        (Some(start), Some(end)) if start < end => value[start + 1..end].to_owned(),
        _ => value
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// Reads the DATA section up to the lone dot, undoing dot-stuffing. `None` if it is too big
/// (the rest is still consumed so the session stays in sync).
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(read: &mut R) -> io::Result<Option<String>> {
    let mut data = Vec::new();
    let mut too_big = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            break;
        }
        let content = line.strip_prefix(b".").unwrap_or(&line);
        if data.len() + content.len() > MAX_MESSAGE_BYTES {
            too_big = true;
        } else {
            data.extend_from_slice(content);
        }
    }
    Ok((!too_big).then(|| String::from_utf8_lossy(&data).into_owned()))
}

fn parse_message(from: String, to: Vec<String>, raw: String) -> Message {
    let (headers, body) = split_entity(&raw);
    let subject = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("subject"))
        .map(|(_, v)| decode_words(v))
        .unwrap_or_default();
    let mut text = None;
    let mut html = None;
    collect_parts(&headers, body, &mut text, &mut html);
    let body = text.or_else(|| html.clone()).unwrap_or_default();
    Message {
        from,
        to,
        subject,
        body,
        html,
        headers,
        raw,
    }
}

/// Splits an entity into unfolded headers and its body.
fn split_entity(entity: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = match (entity.find("\r\n\r\n"), entity.find("\n\n")) {
        (Some(crlf), Some(lf)) if lf < crlf => (&entity[..lf], &entity[lf + 2..]),
        (Some(crlf), _) => (&entity[..crlf], &entity[crlf + 4..]),
        (None, Some(lf)) => (&entity[..lf], &entity[lf + 2..]),
        (None, None) => (entity, ""),
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    (headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A parameter of a structured header value: `multipart/alternative; boundary="x"` → `x`.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

fn collect_parts(
    headers: &[(String, String)],
    body: &str,
    text: &mut Option<String>,
    html: &mut Option<String>,
) {
    let content_type = header(headers, "content-type").unwrap_or("text/plain");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if mime.starts_with("multipart/") {
        let Some(boundary) = parameter(content_type, "boundary") else {
            return;
        };
        let delimiter = format!("--{boundary}");
        for part in body.split(delimiter.as_str()).skip(1) {
            if part.starts_with("--") {
                break;
            }
            let part = part
                .strip_prefix("\r\n")
                .or_else(|| part.strip_prefix('\n'))
                .unwrap_or(part);
            let (part_headers, part_body) = split_entity(part);
            collect_parts(&part_headers, part_body, text, html);
        }
        return;
    }
    let encoding = header(headers, "content-transfer-encoding")
        .unwrap_or("7bit")
        .trim()
        .to_ascii_lowercase();
    let decoded = match encoding.as_str() {
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_else(|_| body.to_owned())
        }
        "quoted-printable" => decode_quoted_printable(body),
        _ => body.to_owned(),
    };
    let decoded = decoded.trim_end_matches(['\r', '\n']).to_owned();
    match mime.as_str() {
        "text/html" if html.is_none() => *html = Some(decoded),
        "text/plain" if text.is_none() => *text = Some(decoded),
        _ => {}
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    (byte as char)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn decode_quoted_printable(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            // Soft line break: `=` at the end of a line.
            if bytes.get(i + 1) == Some(&b'\r') && bytes.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            if bytes.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex_value),
                bytes.get(i + 2).copied().and_then(hex_value),
            ) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`); whitespace between two
/// encoded words is dropped, as the RFC says.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut previous_was_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, candidate) = rest.split_at(start);
        let decoded = encoded_word(candidate);
        let Some((text, consumed)) = decoded else {
            out.push_str(before);
            out.push_str("=?");
            rest = &candidate[2..];
            previous_was_word = false;
            continue;
        };
        if !(previous_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        out.push_str(&text);
        rest = &candidate[consumed..];
        previous_was_word = true;
    }
    out.push_str(rest);
    out
}

/// One encoded word at the start of `input`: its text and how many bytes it spans.
fn encoded_word(input: &str) -> Option<(String, usize)> {
    let inner = input.strip_prefix("=?")?;
    let mut fields = inner.splitn(3, '?');
    let _charset = fields.next()?;
    let encoding = fields.next()?;
    let rest = fields.next()?;
    let end = rest.find("?=")?;
    let payload = &rest[..end];
    let consumed = 2 + inner.len() - rest.len() + end + 2;
    let text = match encoding {
        "B" | "b" => String::from_utf8_lossy(
            &base64::engine::general_purpose::STANDARD
                .decode(payload)
                .ok()?,
        )
        .into_owned(),
        "Q" | "q" => decode_quoted_printable(&payload.replace('_', " ")),
        _ => return None,
    };
    Some((text, consumed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_soft_breaks_and_escapes() {
        assert_eq!(
            decode_quoted_printable("caf=C3=A9 and a long=\r\n line"),
            "café and a long line"
        );
    }

    #[test]
    fn encoded_words_in_subjects() {
        assert_eq!(
            decode_words("=?utf-8?b?Q2Fmw6k=?= =?utf-8?q?_au_lait?="),
            "Café au lait"
        );
        assert_eq!(decode_words("plain subject"), "plain subject");
        assert_eq!(
            decode_words("Re: =?UTF-8?Q?caf=C3=A9?= now"),
            "Re: café now"
        );
    }

    #[test]
    fn multipart_alternative_gives_text_and_html() {
        let raw = "Subject: Hi\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nWW91ciBjb2RlIGlzIDEyMzQ1Ng==\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>code <b>123456</b></p>=\r\n\r\n--b1--\r\n";
        let message = parse_message("a@b".into(), vec!["c@d".into()], raw.into());
        assert_eq!(message.subject, "Hi");
        assert_eq!(message.body, "Your code is 123456");
        assert_eq!(message.html.as_deref(), Some("<p>code <b>123456</b></p>"));
    }

    #[test]
    fn addresses_from_envelope_commands() {
        assert_eq!(angle_address("FROM:<a@b.c> SIZE=10 BODY=8BITMIME"), "a@b.c");
        assert_eq!(angle_address("TO: <x@y>"), "x@y");
        assert_eq!(angle_address("FROM:<>"), "");
    }
}
