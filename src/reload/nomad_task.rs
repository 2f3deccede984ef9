//! A reload through Nomad's signal API (`POST /v1/client/allocation/:id/signal`), for a Vector
//! that runs as a Nomad task in a container or another PID namespace, where no local signal
//! reaches it.

use std::time::{Duration, SystemTime};

use rustix::process::Signal;

use super::signal::{AGE_ROUNDING_MARGIN, MIN_PROCESS_AGE};
use super::signal_names::signal_name;
use crate::nomad::{Blocking, NomadClient};

/// A reload of one task through Nomad.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NomadTaskReload {
    /// Vector's allocation.
    pub alloc_id: String,
    /// Vector's task in that allocation.
    pub task: String,
    pub signal: Signal,
}

/// Why Nomad did not signal the task.
#[derive(Debug, thiserror::Error)]
pub enum NomadTaskError {
    #[error("Nomad did not signal task {task:?} of allocation {alloc_id}: {source}")]
    Nomad {
        alloc_id: String,
        task: String,
        source: crate::nomad::Error,
    },
    #[error(
        "task {task:?} of allocation {alloc_id} is not running (state {state:?}): not signalling it; Vector loads the table when it starts"
    )]
    TaskNotRunning {
        alloc_id: String,
        task: String,
        state: String,
    },
}

impl NomadTaskReload {
    /// Asks Nomad to signal the task, once it is old enough to survive the signal.
    pub async fn send(&self, client: &NomadClient) -> Result<(), NomadTaskError> {
        self.wait_until_task_is_old_enough(client).await?;
        client
            .signal_allocation(&self.alloc_id, &self.task, signal_name(self.signal))
            .await
            .map_err(|source| NomadTaskError::Nomad {
                alloc_id: self.alloc_id.clone(),
                task: self.task.clone(),
                source,
            })
    }

    /// Nomad's signal API has no age gate of its own, and a SIGHUP that reaches Vector before
    /// it installs its handler kills it: read the task's state first. A task Nomad reports as
    /// not running is not signalled (it loads the table when it starts); one that started less
    /// than [`MIN_PROCESS_AGE`] ago is signalled once it is that old, and a start time that
    /// cannot be read counts as "just now". When the state cannot be read at all (the request
    /// fails, or Nomad reports no state for the task), the signal goes as it would without this
    /// check: Nomad itself refuses a task that is not running.
    async fn wait_until_task_is_old_enough(
        &self,
        client: &NomadClient,
    ) -> Result<(), NomadTaskError> {
        let state = match client.allocation(&self.alloc_id, Blocking::default()).await {
            Ok(alloc) => alloc.value.task_states.get(&self.task).cloned(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the Vector task's state; signalling without the age check");
                None
            }
        };
        let Some(state) = state else {
            return Ok(());
        };
        if state.state != "running" {
            return Err(NomadTaskError::TaskNotRunning {
                alloc_id: self.alloc_id.clone(),
                task: self.task.clone(),
                state: state.state,
            });
        }
        let age = humantime::parse_rfc3339_weak(&state.started_at)
            .ok()
            .and_then(|started| SystemTime::now().duration_since(started).ok())
            .unwrap_or(Duration::ZERO);
        let needed = MIN_PROCESS_AGE + AGE_ROUNDING_MARGIN;
        tokio::time::sleep(needed.saturating_sub(age)).await;
        Ok(())
    }
}
