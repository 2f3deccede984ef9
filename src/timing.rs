//! `run`'s timing: the debounce (`--wait`, consul-template's MIN:MAX), resync, grace, reload
//! interval, read deadline and shutdown timeout, as the program runs with them.

use std::time::Duration;

/// `run`'s timing, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// A full listing replaces the model this often (jittered by the watcher).
    pub resync_interval: Duration,
    /// In blocking mode, the least time between two listings.
    pub min_relist_interval: Duration,
    /// How long rows outlive their allocation's departure, so Vector can finish its files.
    pub grace: Duration,
    /// The debounce of publishes.
    pub wait: Wait,
    /// The least time between two reloads of Vector.
    pub min_reload_interval: Duration,
    /// Read deadline on the event stream.
    pub stream_timeout: Duration,
    /// How long a stop may take to publish what is pending and deliver an owed reload.
    pub shutdown_timeout: Duration,
}

/// `--wait MIN[:MAX]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wait {
    /// Publish once there has been no change for this long...
    pub min: Duration,
    /// ...but no later than this after the first change.
    pub max: Duration,
}

/// Parses `--wait MIN[:MAX]`; MAX defaults to 4×MIN and must not be below MIN.
pub fn parse_wait(raw: &str) -> Result<Wait, String> {
    let duration = |part: &str| {
        humantime::parse_duration(part.trim())
            .map_err(|e| format!("{part:?} is not a duration such as 100ms or 2s: {e}"))
    };
    let (min, max) = match raw.split_once(':') {
        Some((min, max)) => (duration(min)?, duration(max)?),
        None => {
            let min = duration(raw)?;
            (min, min * 4)
        }
    };
    if max < min {
        return Err(format!(
            "the MAX of --wait ({max:?}) must not be below its MIN ({min:?})"
        ));
    }
    Ok(Wait { min, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_parse_like_consul_templates() {
        assert_eq!(
            parse_wait("100ms:1s"),
            Ok(Wait {
                min: Duration::from_millis(100),
                max: Duration::from_secs(1)
            })
        );
        assert_eq!(
            parse_wait("2s"),
            Ok(Wait {
                min: Duration::from_secs(2),
                max: Duration::from_secs(8)
            })
        );
        assert!(parse_wait("1s:100ms").is_err());
        assert!(parse_wait("soon").is_err());
    }
}
