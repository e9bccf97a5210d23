//! Reading `text/event-stream` (the daemon's `/v1/events`), as the HTML
//! living standard says: what `tend top` and the fleet's `--wait-ready`
//! follow.

/// The `data:` of server-sent events, line by line.
#[derive(Debug, Default)]
pub struct Sse {
    data: String,
    any: bool,
}

impl Sse {
    /// One line of the stream (with or without its line end); the event's
    /// data once the blank line that ends it comes. `id:`, `event:`,
    /// `retry:` and `: comments` need nothing here.
    pub fn line(&mut self, line: &str) -> Option<String> {
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            self.any = false;
            return (!self.data.is_empty()).then(|| std::mem::take(&mut self.data));
        }
        if let Some(d) = l.strip_prefix("data:") {
            if self.any {
                self.data.push('\n');
            }
            self.any = true;
            self.data.push_str(d.strip_prefix(' ').unwrap_or(d));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::Sse;

    #[test]
    fn server_sent_events_are_read_as_the_spec_says() {
        let mut sse = Sse::default();
        let mut got = Vec::new();
        let stream = "id: 1-1\r\ndata: {\"kind\":\"state\"}\r\n\r\n: keep-alive\n\n\
                      data:{\"a\":\ndata: 1}\n\n\n\nevent: x\nretry: 5\n\n";
        for line in stream.split_inclusive('\n') {
            got.extend(sse.line(line));
        }
        assert_eq!(got, ["{\"kind\":\"state\"}", "{\"a\":\n1}"]);
    }
}
