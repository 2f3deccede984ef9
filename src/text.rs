//! Text from elsewhere (Nomad's error bodies, a reload command's stderr) made fit for one log
//! line or one error message.

/// `text` with every run of whitespace (newlines included) collapsed to one space, cut to at
/// most `max_chars` characters.
pub fn one_line(text: &str, max_chars: usize) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(max_chars)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_collapses_and_long_text_is_cut() {
        assert_eq!(one_line("  a\n\tb   c \r\n", 100), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc");
        assert_eq!(one_line("", 3), "");
    }
}
