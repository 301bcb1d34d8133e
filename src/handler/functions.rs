//! One handler per function. Each reads the host's invocation, decodes the trigger value,
//! hands it to the engine, and answers: handled (200), dead-lettered with a reason (200), or
//! "redeliver" (500) when a retry by the broker is the right outcome.

use axum::body::Bytes;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::deadletter::{DeadLetter, dead_letter};
use super::invocation::{HttpTriggerRequest, Invocation, InvocationResult};
use super::page;
use super::{Answer, AppState, names};
use crate::bus::OutgoingMessage;
use crate::engine::Delivery;
use crate::engine::journal::Transition;
use crate::envelope::{Envelope, WorkflowKind};
use crate::events::{ClusterChange, Intake, read_event};
use crate::restore::report::ReportKind;
use crate::restore::request::parse_request_bytes;
use crate::status::{StatusError, render};
use crate::telemetry::{propagation, redact, spans};
use crate::workflow::onboarding::onboard_start::{self, Start};
use crate::workflow::restoring::drill::drill_schedule::{self, HoldCause};
use crate::workflow::restoring::{self, keys};
use tracing::Instrument as _;

/// Binding names used in `functions/*/function.json`.
pub mod bindings {
    /// `cluster-events` trigger (`dataType: binary`).
    pub const EVENT: &str = "event";
    /// `workflow` trigger (`dataType: binary`).
    pub const MESSAGE: &str = "message";
    /// `restore-requests` trigger (`dataType: binary`).
    pub const REQUEST: &str = "request";
    /// `restore-drills` timer.
    pub const TIMER: &str = "timer";
    /// `status` HTTP trigger.
    pub const HTTP_REQUEST: &str = "req";
    /// `status` HTTP output.
    pub const HTTP_RESPONSE: &str = "res";
}

/// `cluster-events`: one Event Grid event per message → start onboarding or offboarding.
pub async fn cluster_events(State(state): State<AppState>, raw: Bytes) -> Answer {
    let (inv, body) = match read_message(&raw, bindings::EVENT) {
        Ok(pair) => pair,
        Err(answer) => return answer,
    };
    let event = match read_event(&body) {
        Ok(Intake::Cluster(ev)) => ev,
        Ok(Intake::Ignored(why)) => {
            tracing::info!(function = names::CLUSTER_EVENTS, "ignored event: {why}");
            return Answer::Handled(InvocationResult::logs([format!("ignored: {why}")]));
        }
        Err(err) => {
            return reject(
                &state,
                names::CLUSTER_EVENTS,
                &inv,
                &body,
                err.dead_letter_reason(),
                err.to_string(),
            )
            .await;
        }
    };
    let kind = match event.change {
        ClusterChange::Written => WorkflowKind::Onboard,
        ClusterChange::Deleted => WorkflowKind::Offboard,
    };
    let mut payload = Map::new();
    payload.insert("clusterId".into(), json!(event.cluster.to_string()));
    payload.insert("eventId".into(), json!(event.event_id));
    start(
        &state,
        names::CLUSTER_EVENTS,
        &inv,
        &body,
        kind,
        &event.cluster.to_string(),
        &event.generation,
        payload,
    )
    .await
}

/// The dead-letter reason of a workflow that stopped at a step (the description names the
/// step, what failed and the fix).
pub const WORKFLOW_FAILED: &str = "WorkflowFailed";

/// `workflow`: run the step an envelope names; an onboarding or offboarding that stops is
/// dead-lettered.
pub async fn workflow(State(state): State<AppState>, raw: Bytes) -> Answer {
    let (inv, body) = match read_message(&raw, bindings::MESSAGE) {
        Ok(pair) => pair,
        Err(answer) => return answer,
    };
    let env = match Envelope::decode(&body) {
        Ok(env) => env,
        Err(err) => {
            return reject(
                &state,
                names::WORKFLOW,
                &inv,
                &body,
                err.dead_letter_reason(),
                err.to_string(),
            )
            .await;
        }
    };
    match state
        .engine
        .run_delivery(&env, Delivery::from_count(inv.delivery_count()))
        .await
    {
        Ok(report) => {
            if let Transition::Failed { reason } = &report.transition
                && matches!(env.kind, WorkflowKind::Onboard | WorkflowKind::Offboard)
            {
                // A protection workflow that stopped needs a person: its last message goes to
                // the dead letters with what failed and the fix, beside the recorded status.
                // (A restore or drill that fails is answered by its result and report.)
                let description = format!(
                    "{} workflow {} for {} stopped at step {}: {}",
                    env.kind,
                    env.workflow_id,
                    env.subject,
                    report.step,
                    redact::secrets(reason)
                );
                return reject(
                    &state,
                    names::WORKFLOW,
                    &inv,
                    &body,
                    WORKFLOW_FAILED,
                    description,
                )
                .await;
            }
            let line = format!(
                "{} {} step {} attempt {}: {:?}",
                env.kind, env.workflow_id, report.step, env.attempt, report.transition
            );
            tracing::info!(workflow_id = %env.workflow_id, step = %env.step, "{line}");
            Answer::Handled(InvocationResult::logs([line]))
        }
        Err(err) if err.should_redeliver() => redeliver(names::WORKFLOW, err.to_string()),
        Err(err) => {
            reject(
                &state,
                names::WORKFLOW,
                &inv,
                &body,
                "UnknownStep",
                err.to_string(),
            )
            .await
        }
    }
}

/// `restore-requests`: a JSON restore request → start a restore workflow. A request that
/// breaks the schema (`schemas/restore-request.schema.json`) or its rules is dead-lettered
/// with every problem listed, and the same problems are published to `restore-results`.
pub async fn restore_requests(State(state): State<AppState>, raw: Bytes) -> Answer {
    let (inv, body) = match read_message(&raw, bindings::REQUEST) {
        Ok(pair) => pair,
        Err(answer) => return answer,
    };
    let request = match parse_request_bytes(&body) {
        Ok(request) => request,
        Err(err) => {
            let message_id = inv.message_id().unwrap_or_default();
            let rejected = json!({
                "kind": "restore",
                "messageId": message_id,
                "verdict": "rejected",
                "reasons": err.problems().iter().map(ToString::to_string).collect::<Vec<_>>(),
            });
            let ctx = state.engine.ctx();
            let mut result = OutgoingMessage::json(
                &ctx.queues.restore_results,
                &format!("{message_id}:rejected"),
                rejected.to_string().into_bytes(),
            );
            result.label = Some("rejected".into());
            if let Err(e) = ctx.publisher.send(result).await {
                return redeliver(
                    names::RESTORE_REQUESTS,
                    format!("could not publish the rejection of an invalid request: {e}"),
                );
            }
            return reject(
                &state,
                names::RESTORE_REQUESTS,
                &inv,
                &body,
                "InvalidRestoreRequest",
                err.to_string(),
            )
            .await;
        }
    };
    let subject = request
        .source_cluster_id
        .as_ref()
        .or(request.backup_instance_id.as_ref())
        .map(ToString::to_string)
        .unwrap_or_default();
    let generation = request
        .request_id
        .clone()
        .unwrap_or_else(|| inv.message_id().unwrap_or_default());
    let mut payload = Map::new();
    payload.insert(keys::REQUEST.into(), restoring::to_fact(&request));
    payload.insert(
        keys::REQUESTED_AT.into(),
        restoring::time_fact(state.engine.ctx().clock.now()),
    );
    start(
        &state,
        names::RESTORE_REQUESTS,
        &inv,
        &body,
        WorkflowKind::Restore,
        &subject,
        &generation,
        payload,
    )
    .await
}

/// `fleet-scan`: the sweep timer. Lists the fleet with Resource Graph and starts onboarding
/// for clusters not protected yet and repairs for protected clusters whose protection
/// decayed ([`crate::fleet::scan`]). Answers 200 whatever happened (timers are not
/// redelivered): a query that failed is in the answer's log lines and the logs, and the next
/// sweep reads again.
pub async fn fleet_scan(State(state): State<AppState>, raw: Bytes) -> Answer {
    if let Err(e) = serde_json::from_slice::<Value>(&raw) {
        tracing::warn!(
            function = names::FLEET_SCAN,
            "the timer payload is not JSON ({e}); sweeping anyway"
        );
    }
    let lines = match crate::fleet::scan::sweep(&state.engine, true).await {
        Ok(report) => {
            let mut lines = vec![report.summary()];
            for (cluster, workflow, what) in &report.started {
                lines.push(format!("{what} workflow {workflow} started for {cluster}"));
            }
            for (cluster, finding) in &report.findings {
                if let crate::fleet::sweep::Finding::Drifted(_) = finding {
                    lines.push(format!("drifted: {}: {}", cluster.id, finding.detail()));
                }
            }
            for (cluster, error) in &report.start_errors {
                lines.push(format!(
                    "not started for {cluster} (next sweep tries again): {error}"
                ));
            }
            lines.extend(report.unreadable_rows.iter().cloned());
            lines
        }
        Err(e) => vec![format!(
            "scan: the sweep did not complete; the next one reads again: {}",
            redact::secrets(&e.to_string())
        )],
    };
    for line in &lines {
        tracing::info!(function = names::FLEET_SCAN, "{line}");
    }
    Answer::Handled(InvocationResult::logs(lines))
}

/// `restore-drills`: the drill timer. Starts one drill per protected cluster of the configured
/// vaults (or a rotating sample) that has a recovery point. Clusters not drillable yet, vaults
/// that cannot be listed and drills that cannot be started are reported in the answer's log
/// lines and the logs, and recorded in the status journal; the answer is 200 all the same:
/// timer invocations are not redelivered, so a 500 would only hide the report.
pub async fn restore_drills(State(state): State<AppState>, raw: Bytes) -> Answer {
    let inv: Invocation = match serde_json::from_slice(&raw) {
        Ok(inv) => inv,
        Err(e) => {
            let why = format!(
                "the host's request is not JSON: {e} (a timer is not redelivered: the next scheduled run tries again)"
            );
            tracing::error!(function = names::RESTORE_DRILLS, "invocation failed: {why}");
            return Answer::Redeliver(InvocationResult::logs([format!("failed: {why}")]));
        }
    };
    let past_due = inv
        .data
        .get(bindings::TIMER)
        .and_then(|t| t.get("IsPastDue"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let ctx = state.engine.ctx();
    let now = ctx.clock.now();
    let run = drill_schedule::start_drills(&state.engine, now).await;
    let mut summary = format!(
        "restore-drill timer fired (past due: {past_due}); {} drill(s) started",
        run.started.len()
    );
    if !run.skipped.is_empty() {
        summary.push_str(&format!(
            ", {} skipped (not drillable yet)",
            run.skipped.len()
        ));
    }
    if !run.vault_problems.is_empty() {
        summary.push_str(&format!(
            ", {} vault(s) could not be read",
            run.vault_problems.len()
        ));
    }
    if !run.start_failures.is_empty() {
        summary.push_str(&format!(
            ", {} drill(s) could not be started",
            run.start_failures.len()
        ));
    }
    let held = |cause| run.held.iter().filter(|h| h.cause == cause).count();
    for (cause, what) in [
        (HoldCause::RestoreReserve, "held for the restore reserve"),
        (HoldCause::VaultBusy, "waiting for a busy vault"),
    ] {
        let n = held(cause);
        if n > 0 {
            summary.push_str(&format!(", {n} {what}"));
        }
    }
    if !run.already.is_empty() {
        summary.push_str(&format!(", {} already drilled today", run.already.len()));
    }
    if ctx.restore.vaults.is_empty() {
        summary.push_str(" (BACKUP_PILOT_BACKUP_VAULTS is not set, so no cluster is drilled)");
    }
    tracing::info!(function = names::RESTORE_DRILLS, "{summary}");
    let mut lines = vec![summary];
    for (drill, id) in &run.started {
        let line = format!("drill {id} for {}", drill.cluster);
        tracing::info!(function = names::RESTORE_DRILLS, "{line}");
        lines.push(line);
    }
    for skip in &run.skipped {
        let line = format!("skipped {}: {}", skip.cluster, skip.reason());
        tracing::info!(function = names::RESTORE_DRILLS, "{line}");
        lines.push(line);
    }
    for held in &run.held {
        let line = format!("held {}: {}", held.drill.cluster, held.reason);
        tracing::info!(function = names::RESTORE_DRILLS, "{line}");
        lines.push(line);
    }
    for already in &run.already {
        let line = already.describe();
        tracing::info!(function = names::RESTORE_DRILLS, "{line}");
        lines.push(line);
    }
    for problem in &run.vault_problems {
        let line = format!("vault error: {}", redact::secrets(&problem.reason()));
        tracing::error!(function = names::RESTORE_DRILLS, "{line}");
        lines.push(line);
    }
    for (drill, error) in &run.start_failures {
        let line = format!(
            "drill of {} not started: {} (the next restore-drills run tries again)",
            drill.cluster,
            redact::secrets(&error.to_string())
        );
        tracing::error!(function = names::RESTORE_DRILLS, "{line}");
        lines.push(line);
    }
    Answer::Handled(InvocationResult::logs(lines))
}

/// `status`: the HTTP status API (route `status/{*cluster}`, function-key auth).
/// `GET /api/status` answers the fleet summary; `GET /api/status/{cluster id}` one cluster's
/// detail. Answers are JSON, or the HTML pages of [`page`] when the client accepts
/// `text/html` (a browser); none carries a secret, the function key included. A store that
/// cannot be read answers 503 with the reason.
pub async fn status(State(state): State<AppState>, raw: Bytes) -> Answer {
    let inv: Invocation = match serde_json::from_slice(&raw) {
        Ok(inv) => inv,
        Err(e) => {
            return redeliver(
                names::STATUS,
                format!("the host's request is not JSON: {e}"),
            );
        }
    };
    let req = match HttpTriggerRequest::from_invocation(&inv, bindings::HTTP_REQUEST) {
        Ok(req) => req,
        Err(e) => return http_error(400, "BadRequest", e.to_string()),
    };
    if !req.method.eq_ignore_ascii_case("GET") {
        return http_error(
            405,
            "MethodNotAllowed",
            format!("{} is not allowed; use GET", req.method),
        );
    }
    let journal = &state.engine.ctx().journal;
    let store = journal.store();
    let now = state.engine.ctx().clock.now();
    let Some(cluster) = requested_cluster(&req) else {
        return match journal.fleet_status().await {
            Ok(clusters) if req.accepts_html() => {
                // Links never carry the function key: it appears in no answer.
                let link = |id: &str| format!("/api/status/{}", id.trim_start_matches('/'));
                let policy = state.engine.ctx().restore.drill_policy_text();
                http_page(page::fleet_page(
                    &store,
                    &clusters,
                    now,
                    &link,
                    Some(&policy),
                ))
            }
            Ok(clusters) => {
                let mut body = render::fleet_json(&store, &clusters);
                body["drillPolicy"] = state.engine.ctx().restore.drill_policy();
                http_ok(body)
            }
            Err(e) => store_unavailable(&e),
        };
    };
    match journal.cluster_status(&cluster).await {
        Ok(Some(status)) if req.accepts_html() => {
            let drills = match state
                .engine
                .ctx()
                .reports
                .history(ReportKind::Drill, &cluster, RUN_HISTORY)
                .await
            {
                Ok(runs) => runs,
                Err(e) => {
                    tracing::warn!(function = names::STATUS, "report history unreadable: {e}");
                    Vec::new()
                }
            };
            http_page(page::cluster_page(
                &store,
                &status,
                &drills,
                now,
                "/api/status",
            ))
        }
        Ok(Some(status)) => {
            let mut body = render::cluster_json(&store, &status);
            add_run_history(&state, &cluster, &mut body).await;
            http_ok(body)
        }
        Ok(None) => http_error(
            404,
            "ClusterNotFound",
            format!(
                "no status is recorded for {cluster} in {} ({}); onboarding records it from its first step: check the cluster id, or start onboarding with `backup-pilot onboard --cluster {cluster}`",
                store.location, store.kind
            ),
        ),
        Err(e) => store_unavailable(&e),
    }
}

/// How many drills and restores the cluster view lists.
pub const RUN_HISTORY: usize = 10;

/// Adds the cluster's recent drills and restores (from the report store) to its status view;
/// a report store that cannot be read is named instead of failing the answer.
async fn add_run_history(state: &AppState, cluster: &str, body: &mut Value) {
    let reports = &state.engine.ctx().reports;
    for (key, kind) in [
        ("drillHistory", ReportKind::Drill),
        ("restoreHistory", ReportKind::Restore),
    ] {
        body[key] = match reports.history(kind, cluster, RUN_HISTORY).await {
            Ok(runs) => json!(runs),
            Err(e) => {
                tracing::warn!(function = names::STATUS, "report history unreadable: {e}");
                json!({"error": redact::secrets(&e.to_string()), "store": reports.location()})
            }
        };
    }
}

/// The cluster id from the route (`Params.cluster`), or from the path after `/status/` when
/// the host sent no route data; a leading `/` is added when missing.
fn requested_cluster(req: &HttpTriggerRequest) -> Option<String> {
    let raw = req.param("cluster").or_else(|| {
        let path = req.path();
        let rest = path.split_once("/status/")?.1.to_string();
        let decoded = percent_encoding::percent_decode_str(&rest)
            .decode_utf8_lossy()
            .into_owned();
        Some(decoded).filter(|s| !s.trim_matches('/').is_empty())
    })?;
    let trimmed = raw.trim().trim_matches('/');
    Some(format!("/{trimmed}"))
}

fn http_page(page: String) -> Answer {
    Answer::Handled(InvocationResult::html(
        bindings::HTTP_RESPONSE,
        200,
        page,
        vec![],
    ))
}

fn http_ok(body: Value) -> Answer {
    Answer::Handled(InvocationResult::http(
        bindings::HTTP_RESPONSE,
        200,
        body,
        vec![],
    ))
}

fn http_error(status: u16, code: &str, message: String) -> Answer {
    let body = json!({"error": {"code": code, "message": redact::secrets(&message)}});
    Answer::Handled(InvocationResult::http(
        bindings::HTTP_RESPONSE,
        status,
        body,
        vec![],
    ))
}

fn store_unavailable(e: &StatusError) -> Answer {
    tracing::error!(function = names::STATUS, "status store unavailable: {e}");
    http_error(503, "StatusStoreUnavailable", e.to_string())
}

/// Parses the host request and extracts a message trigger's body. An unreadable host request
/// is redelivered (the broker dead-letters it after maxDeliveryCount; nothing is lost).
fn read_message(raw: &[u8], binding: &str) -> Result<(Invocation, Vec<u8>), Answer> {
    let inv: Invocation = serde_json::from_slice(raw)
        .map_err(|e| redeliver(binding, format!("the host's request is not JSON: {e}")))?;
    let body = inv
        .message_body(binding, true)
        .map_err(|e| redeliver(binding, e.to_string()))?;
    Ok((inv, body))
}

#[allow(clippy::too_many_arguments)]
async fn start(
    state: &AppState,
    function: &str,
    inv: &Invocation,
    body: &[u8],
    kind: WorkflowKind,
    subject: &str,
    generation: &str,
    payload: Map<String, Value>,
) -> Answer {
    // A sender that traces (an Azure SDK writes `Diagnostic-Id`) makes the workflow part of
    // its trace.
    let received = spans::receive(
        function,
        &inv.message_id().unwrap_or_default(),
        &propagation::from_properties(&inv.application_properties()),
    );
    let started = async {
        if kind == WorkflowKind::Onboard {
            onboard_start::start_onboarding(&state.engine, subject, generation, payload).await
        } else {
            state
                .engine
                .start(kind, subject, generation, payload)
                .await
                .map(|env| Start::Started(Box::new(env)))
        }
    }
    .instrument(received)
    .await;
    match started {
        Ok(Start::AlreadyRunning { since }) => {
            let line = format!(
                "{kind} of {subject} not started: an onboarding of the cluster is under way (since {})",
                crate::clock::rfc3339(since)
            );
            tracing::info!("{line}");
            Answer::Handled(InvocationResult::logs([line]))
        }
        Ok(Start::Started(env)) => {
            let line = format!(
                "{kind} workflow {} started for {subject} (message {})",
                env.workflow_id,
                env.message_id()
            );
            tracing::info!(workflow_id = %env.workflow_id, "{line}");
            Answer::Handled(InvocationResult::logs([line]))
        }
        Err(err) if err.should_redeliver() => redeliver(function, err.to_string()),
        Err(err) => reject(state, function, inv, body, "NoWorkflow", err.to_string()).await,
    }
}

async fn reject(
    state: &AppState,
    function: &str,
    inv: &Invocation,
    body: &[u8],
    reason: &str,
    description: String,
) -> Answer {
    tracing::warn!(function, reason, "dead-lettering a message: {description}");
    let letter = DeadLetter {
        function,
        reason,
        description: description.clone(),
    };
    match dead_letter(state.engine.ctx(), inv, body, letter).await {
        Ok(()) => Answer::Handled(InvocationResult::logs([format!(
            "dead-lettered ({reason}): {description}"
        )])),
        Err(e) => redeliver(
            function,
            format!("could not dead-letter ({reason}: {description}): {e}"),
        ),
    }
}

fn redeliver(function: &str, why: String) -> Answer {
    tracing::error!(
        function,
        "invocation failed, the host will redeliver: {why}"
    );
    Answer::Redeliver(InvocationResult::logs([format!(
        "failed, will be redelivered: {why}"
    )]))
}
