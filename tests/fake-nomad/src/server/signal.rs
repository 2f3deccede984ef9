//! `POST /v1/client/allocation/:id/signal`, as the client's endpoint answers it.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::authorize::authorize;
use super::{ApiError, AppState, SignalRecord, text};
use crate::model::Capability;

/// `AllocSignalRequest`'s body.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SignalBody {
    #[serde(default)]
    task: String,
    #[serde(default)]
    signal: String,
}

/// `POST /v1/client/allocation/:id/signal`: needs `alloc-lifecycle` in the allocation's
/// namespace; an empty `Task` signals every task, as Nomad does.
pub(super) async fn signal_allocation(
    State(shared): State<AppState>,
    Path(alloc_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let request: SignalBody = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Failed to decode body: {e}"),
            );
        }
    };
    let cluster = shared.cluster();
    let policy = match authorize(&cluster, &headers, &[]) {
        Ok(policy) => policy,
        Err(error) => return error.into_response(),
    };
    let Some(alloc) = cluster.allocations.get(&alloc_id) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("Unknown allocation \"{alloc_id}\""),
        );
    };
    if !policy.allows(Capability::Namespace(&alloc.namespace, "alloc-lifecycle")) {
        return ApiError::forbidden().into_response();
    }
    let tasks: Vec<String> = alloc
        .job
        .task_group(&alloc.task_group)
        .map(|g| g.tasks.iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default();
    if !request.task.is_empty() && !tasks.contains(&request.task) {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "Failed to signal task: {}, err: task not found",
                request.task
            ),
        );
    }
    let signalled = if request.task.is_empty() {
        tasks
    } else {
        vec![request.task]
    };
    // The client's task runner refuses a task without a driver handle (ErrTaskNotRunning).
    let not_running = signalled.iter().find(|task| {
        alloc
            .task_states
            .get(*task)
            .is_none_or(|state| state.state != "running")
    });
    if let Some(task) = not_running {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Failed to signal task: {task}, err: Task not running"),
        );
    }
    let mut signals = shared.signals.lock().unwrap_or_else(|e| e.into_inner());
    for task in signalled {
        signals.push(SignalRecord {
            alloc_id: alloc_id.clone(),
            task,
            signal: request.signal.clone(),
        });
    }
    StatusCode::OK.into_response()
}
