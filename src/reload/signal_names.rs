//! The signals a reload may send, by name: `--reload-signal` is parsed here, and both signalling
//! methods name the signal they sent with the same words in their outcomes and errors.

use rustix::process::Signal;

/// The signals a reload may use, by name.
const SIGNALS: &[(&str, Signal)] = &[
    ("SIGHUP", Signal::HUP),
    ("SIGUSR1", Signal::USR1),
    ("SIGUSR2", Signal::USR2),
    ("SIGINT", Signal::INT),
    ("SIGTERM", Signal::TERM),
    ("SIGQUIT", Signal::QUIT),
    ("SIGWINCH", Signal::WINCH),
    ("SIGCONT", Signal::CONT),
];

/// Parses `SIGHUP`, `HUP` or `hup` (and the other signals in [`SIGNALS`]).
pub fn parse_signal(name: &str) -> Result<Signal, String> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    SIGNALS
        .iter()
        .find(|(n, _)| *n == full)
        .map(|(_, s)| *s)
        .ok_or_else(|| {
            let known: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
            format!("unknown signal {name:?}; use one of {}", known.join(", "))
        })
}

/// The name of `signal` (`SIGHUP`), as Nomad's signal API and the messages want it.
pub(crate) fn signal_name(signal: Signal) -> &'static str {
    SIGNALS
        .iter()
        .find(|(_, s)| *s == signal)
        .map_or("signal", |(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_with_or_without_prefix() {
        assert_eq!(parse_signal("SIGHUP"), Ok(Signal::HUP));
        assert_eq!(parse_signal("hup"), Ok(Signal::HUP));
        assert_eq!(parse_signal("SIGUSR1"), Ok(Signal::USR1));
        let err = parse_signal("SIGKILLME").expect_err("unknown");
        assert!(err.contains("SIGHUP"), "{err}");
        assert_eq!(signal_name(Signal::USR2), "SIGUSR2");
    }
}
