//! Newline-delimited JSON framing for the event stream: bytes arrive in chunks that may cut a
//! line anywhere (even inside a UTF-8 character), so complete lines are only handed out once
//! their `\n` has arrived. Pure and independent of the transport.

/// The longest line accepted. A frame can hold many allocations, but never this much; a longer
/// "line" means the stream is not what it claims to be.
pub const MAX_LINE: usize = 64 * 1024 * 1024;

/// Why the decoder gave up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a line of the event stream exceeds {MAX_LINE} bytes")]
pub struct LineTooLong;

/// Splits a byte stream into lines.
#[derive(Debug, Default)]
pub struct LineDecoder {
    pending: Vec<u8>,
}

impl LineDecoder {
    pub fn new() -> LineDecoder {
        LineDecoder::default()
    }

    /// Feeds a chunk and returns the lines it completes (without `\n` or a trailing `\r`), in
    /// order. Empty lines are dropped.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, LineTooLong> {
        let mut lines = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            let mut line = std::mem::take(&mut self.pending);
            line.extend_from_slice(&rest[..end]);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if !line.is_empty() {
                lines.push(line);
            }
            rest = &rest[end + 1..];
        }
        self.pending.extend_from_slice(rest);
        if self.pending.len() > MAX_LINE {
            self.pending.clear();
            return Err(LineTooLong);
        }
        Ok(lines)
    }

    /// What is left after the last `\n`: at the end of the body, an unterminated tail (the old
    /// transport's bare-text error, or half a frame cut by a closed connection).
    pub fn remainder(&self) -> &[u8] {
        &self.pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lines_are_split_and_heartbeats_kept() {
        let mut d = LineDecoder::new();
        assert_eq!(d.push(b"{}\n{\"Ind").expect("ok"), [b"{}".to_vec()]);
        assert_eq!(
            d.push(b"ex\":1}\r\n\n").expect("ok"),
            [b"{\"Index\":1}".to_vec()]
        );
        assert!(d.remainder().is_empty());
        assert!(d.push(b"subscription closed").expect("ok").is_empty());
        assert_eq!(d.remainder(), b"subscription closed");
    }

    proptest! {
        /// However the bytes are cut into chunks, the same lines come out in the same order.
        #[test]
        fn chunking_never_changes_the_lines(
            lines in proptest::collection::vec("[^\n\r]{1,40}", 0..20),
            cuts in proptest::collection::vec(0usize..400, 0..30),
        ) {
            let stream: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
            let mut positions: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            positions.push(0);
            positions.push(stream.len());
            positions.sort_unstable();
            let mut decoder = LineDecoder::new();
            let mut out = Vec::new();
            for pair in positions.windows(2) {
                out.extend(decoder.push(&stream[pair[0]..pair[1]]).expect("short lines"));
            }
            let expected: Vec<Vec<u8>> = lines.iter().map(|l| l.clone().into_bytes()).collect();
            prop_assert_eq!(out, expected);
            prop_assert!(decoder.remainder().is_empty());
        }
    }
}
