//! The sink over a real TCP connection, driven by a minimal hand-written SMTP client.

use std::time::Duration;

use portcullis_smtp_sink::SmtpSink;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

struct Client {
    read: BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(sink: &SmtpSink) -> (Self, String) {
        let (read, write) = TcpStream::connect(sink.addr()).await.unwrap().into_split();
        let mut client = Self {
            read: BufReader::new(read),
            write,
        };
        let greeting = client.reply().await;
        (client, greeting)
    }

    /// Reads one (possibly multi-line) reply and returns its last line.
    async fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            self.read.read_line(&mut line).await.unwrap();
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return line.trim_end().to_owned();
            }
        }
    }

    async fn send(&mut self, line: &str) -> String {
        self.write
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.reply().await
    }
}

#[tokio::test]
async fn accepts_mail_and_hands_it_to_the_waiter() {
    let sink = SmtpSink::start().await.unwrap();
    let (mut client, greeting) = Client::connect(&sink).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    assert!(client.send("EHLO test").await.starts_with("250"));
    assert!(
        client
            .send("MAIL FROM:<noreply@example.com>")
            .await
            .starts_with("250")
    );
    assert!(
        client
            .send("RCPT TO:<Ada@Example.com>")
            .await
            .starts_with("250")
    );
    assert!(client.send("DATA").await.starts_with("354"));
    let data = "Subject: =?utf-8?q?Your_code?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n..leading dot and code 123=\r\n456\r\n.";
    assert!(client.send(data).await.starts_with("250"));
    assert!(client.send("QUIT").await.starts_with("221"));

    let message = sink.wait_for("ada@example.com", WAIT).await.unwrap();
    assert_eq!(message.from, "noreply@example.com");
    assert_eq!(message.subject, "Your code");
    assert_eq!(message.body, ".leading dot and code 123456");
    // Taken once: a second wait for the same recipient times out.
    assert!(
        sink.wait_for("ada@example.com", Duration::from_millis(50))
            .await
            .is_err()
    );
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn refuses_while_down_and_accepts_again_after() {
    let sink = SmtpSink::start().await.unwrap();
    sink.set_refusing(true);
    let (_, greeting) = Client::connect(&sink).await;
    assert!(greeting.starts_with("421"), "{greeting}");
    assert!(sink.wait_for_refusals(1, WAIT).await);

    sink.set_refusing(false);
    let (mut client, greeting) = Client::connect(&sink).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    assert!(client.send("HELO test").await.starts_with("250"));
    assert!(
        client
            .send("AUTH PLAIN AHVzZXIAcGFzcw==")
            .await
            .starts_with("235")
    );
    assert!(client.send("MAIL FROM:<a@b>").await.starts_with("250"));
    assert!(client.send("RCPT TO:<c@d>").await.starts_with("250"));
    assert!(client.send("DATA").await.starts_with("354"));
    assert!(
        client
            .send("Subject: hi\r\n\r\nbody\r\n.")
            .await
            .starts_with("250")
    );
    assert_eq!(sink.wait_for("c@d", WAIT).await.unwrap().body, "body");
}
