//! A minimal server-sent-events parser for the subscriber: turns byte chunks into events,
//! with a bound on the size of one event so a misbehaving server cannot exhaust memory.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// An event grew past the configured bound.
#[derive(Debug, thiserror::Error)]
#[error("server-sent event larger than {limit} bytes")]
pub(crate) struct EventTooLarge {
    pub limit: usize,
}

/// Incremental parser state.
pub(crate) struct SseParser {
    line: Vec<u8>,
    current: SseEvent,
    has_data: bool,
    size: usize,
    limit: usize,
}

impl SseParser {
    pub fn new(limit: usize) -> Self {
        Self {
            line: Vec::new(),
            current: SseEvent::default(),
            has_data: false,
            size: 0,
            limit,
        }
    }

    /// Feeds a chunk and returns the events completed by it.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, EventTooLarge> {
        let mut events = Vec::new();
        for &byte in chunk {
            if byte == b'\n' {
                let line = std::mem::take(&mut self.line);
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                if let Some(event) = self.process_line(line) {
                    events.push(event);
                }
            } else {
                self.line.push(byte);
                self.size += 1;
                if self.size > self.limit {
                    return Err(EventTooLarge { limit: self.limit });
                }
            }
        }
        Ok(events)
    }

    fn process_line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.current);
            let had_data = std::mem::replace(&mut self.has_data, false);
            self.size = 0;
            return had_data.then_some(event);
        }
        if line.starts_with(b":") {
            return None;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => self.current.event = value.to_owned(),
            "id" => self.current.id = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks() -> Result<(), EventTooLarge> {
        let mut parser = SseParser::new(1024);
        assert!(parser.feed(b": keep-alive\n\nevent: snap")?.is_empty());
        let events = parser.feed(b"shot\r\nid: 7\ndata: {\"a\":\ndata: 1}\n\n")?;
        assert_eq!(
            events,
            vec![SseEvent {
                event: "snapshot".into(),
                id: Some("7".into()),
                data: "{\"a\":\n1}".into(),
            }]
        );
        Ok(())
    }

    #[test]
    fn oversized_event_is_refused() {
        let mut parser = SseParser::new(16);
        assert!(parser.feed(&[b'x'; 32]).is_err());
    }
}
