//! Whether `run` is ready: a table built from a successful listing has been published, and the
//! last successful sync with Nomad (a listing, or a live watch) is younger than twice the time a
//! listing may take to come (the resync interval, or in blocking mode a query's wait). The state is written by the loop and the watcher and read by `/readyz`; the
//! verdict is a pure function of it and the time, with a one-line reason when not ready.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// What readiness is judged from.
#[derive(Clone, Debug, Default)]
pub struct HealthState {
    /// A table built from a successful listing has been published (or found on disk as is).
    pub published: bool,
    /// When the last successful listing was applied.
    pub last_listing: Option<Instant>,
    /// Since when the watch has been live (the event stream subscribed and answering, or the last
    /// blocking query answered), if it is.
    pub stream_up_since: Option<Instant>,
    /// Since when the watch has been down, once it has been up.
    pub stream_down_since: Option<Instant>,
    /// The last failure talking to Nomad, for the reason.
    pub last_error: Option<String>,
}

/// The state shared between the writers and `/readyz`.
#[derive(Clone, Debug, Default)]
pub struct Health(Arc<Mutex<HealthState>>);

impl Health {
    /// Changes the state.
    pub fn update(&self, change: impl FnOnce(&mut HealthState)) {
        change(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// A copy of the state.
    pub fn snapshot(&self) -> HealthState {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// `Ok` when ready, else why not, in one line.
pub fn readiness(state: &HealthState, now: Instant, listing_every: Duration) -> Result<(), String> {
    let Some(last_listing) = state.last_listing else {
        return Err(match &state.last_error {
            Some(error) => format!("no successful listing yet: {error}"),
            None => "no successful listing yet".to_owned(),
        });
    };
    if !state.published {
        return Err("listed, but no table published yet".to_owned());
    }
    if state.stream_up_since.is_some() {
        return Ok(());
    }
    let limit = listing_every * 2;
    let listing_age = now.saturating_duration_since(last_listing);
    if listing_age < limit {
        return Ok(());
    }
    let stream = match state.stream_down_since {
        Some(since) => format!(
            "watch down for {}",
            humantime::format_duration(round(now.saturating_duration_since(since)))
        ),
        None => "watch not up".to_owned(),
    };
    let error = state
        .last_error
        .as_deref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    Err(format!(
        "{stream} and last listing {} ago{error}",
        humantime::format_duration(round(listing_age))
    ))
}

/// Whole seconds: enough for a person.
fn round(duration: Duration) -> Duration {
    Duration::from_secs(duration.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESYNC: Duration = Duration::from_secs(300);

    #[test]
    fn not_ready_before_a_listing_and_says_why() {
        let now = Instant::now();
        let mut state = HealthState::default();
        assert_eq!(
            readiness(&state, now, RESYNC),
            Err("no successful listing yet".to_owned())
        );
        state.last_error = Some("Nomad refused … with 403".to_owned());
        assert_eq!(
            readiness(&state, now, RESYNC),
            Err("no successful listing yet: Nomad refused … with 403".to_owned())
        );
        state.last_listing = Some(now);
        assert!(readiness(&state, now, RESYNC).is_err(), "not published yet");
        state.published = true;
        assert_eq!(readiness(&state, now, RESYNC), Ok(()));
    }

    #[test]
    fn a_live_stream_keeps_it_ready_and_an_old_listing_without_one_does_not() {
        let t0 = Instant::now();
        let mut state = HealthState {
            published: true,
            last_listing: Some(t0),
            stream_up_since: Some(t0),
            ..HealthState::default()
        };
        let much_later = t0 + Duration::from_secs(3_600);
        assert_eq!(readiness(&state, much_later, RESYNC), Ok(()));
        state.stream_up_since = None;
        state.stream_down_since = Some(much_later - Duration::from_secs(240));
        assert_eq!(
            readiness(&state, t0 + Duration::from_secs(599), RESYNC),
            Ok(()),
            "a listing younger than twice the resync interval"
        );
        assert_eq!(
            readiness(&state, much_later, RESYNC),
            Err("watch down for 4m and last listing 1h ago".to_owned())
        );
    }
}
