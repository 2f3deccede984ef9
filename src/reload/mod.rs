//! Telling Vector to reload its enrichment table, after a publish that changed the file and
//! never otherwise. One file per method: a signal to a local process ([`signal`]), a signal
//! through Nomad's signal API for Vector as a task in a container or another PID namespace
//! ([`nomad_task`]), or a command ([`command`]), each with its own error. [`settings`] is what
//! was configured, [`outcome`] what a reload did and how it is logged, [`signal_names`] the
//! signals by name, and [`announced`] remembers which table Vector was last told about, across
//! restarts. [`Reloader`] is the one entry the daemon and the one-shot commands use.

pub mod announced;
pub mod command;
pub mod nomad_task;
pub mod outcome;
pub mod settings;
pub mod signal;
pub mod signal_names;

use std::path::Path;
use std::sync::Arc;

use crate::nomad::NomadClient;
use crate::publish::TableStamp;
use announced::AnnouncementRecord;
pub use command::CommandReload;
pub use nomad_task::NomadTaskReload;
pub use outcome::{ReloadError, ReloadOutcome, log_outcome};
pub use settings::ReloadSettings;
pub use signal::{ProcessTarget, SignalReload};
pub use signal_names::parse_signal;
use signal_names::signal_name;

/// How Vector is told to reload, ready to act: the settings, the client that talks to Nomad
/// (for `nomad-task`), and the record of the table last announced (none with `--reload none`:
/// nothing is announced, so nothing is kept).
#[derive(Clone, Debug)]
pub struct Reloader {
    settings: ReloadSettings,
    client: Arc<NomadClient>,
    record: Option<AnnouncementRecord>,
}

impl Reloader {
    /// A reloader for the table at `table`.
    pub fn new(settings: ReloadSettings, client: Arc<NomadClient>, table: &Path) -> Reloader {
        let record = (settings != ReloadSettings::None).then(|| AnnouncementRecord::beside(table));
        Reloader {
            settings,
            client,
            record,
        }
    }

    /// Whether announcements are recorded (a reload is configured).
    pub fn has_record(&self) -> bool {
        self.record.is_some()
    }

    /// Whether Vector must still be told about the table `stamp` describes: a reload is
    /// configured and the record names another table (or none, or cannot be read).
    pub fn owes_announcement(&self, stamp: &TableStamp) -> bool {
        self.record
            .as_ref()
            .is_some_and(|record| !record.is_announced(stamp))
    }

    /// Tells Vector to reload for the table `stamp` describes (the file as it is when the
    /// reload is sent) and, once delivered, records it as announced. A record that cannot be
    /// written is a warning: it costs one spare reload after a restart.
    pub async fn announce(&self, stamp: Option<TableStamp>) -> Result<ReloadOutcome, ReloadError> {
        let outcome = self.reload().await?;
        if let (Some(record), Some(stamp)) = (&self.record, stamp)
            && let Err(e) = record.record(&stamp)
        {
            tracing::warn!(error = %e, "Vector was told to reload, but that cannot be remembered");
        }
        Ok(outcome)
    }

    /// Tells Vector to reload, by the configured method.
    async fn reload(&self) -> Result<ReloadOutcome, ReloadError> {
        match &self.settings {
            ReloadSettings::None => Ok(ReloadOutcome::NotConfigured),
            ReloadSettings::Signal(reload) => Ok(ReloadOutcome::Signalled {
                pid: reload.send().await?,
                signal: signal_name(reload.signal),
            }),
            ReloadSettings::NomadTask(reload) => {
                reload.send(&self.client).await?;
                Ok(ReloadOutcome::NomadSignalled {
                    alloc_id: reload.alloc_id.clone(),
                    task: reload.task.clone(),
                    signal: signal_name(reload.signal),
                })
            }
            ReloadSettings::Command(reload) => {
                reload.run().await?;
                Ok(ReloadOutcome::CommandSucceeded {
                    program: reload.program().to_owned(),
                })
            }
        }
    }
}
