//! The service's metrics, as OpenTelemetry instruments on the global meter provider (a no-op
//! until [`install`] runs, so recording is always safe): step durations, retries by reason,
//! ARM calls by method and status, throttled requests, HTTP client durations,
//! time-to-protected, and drill outcomes, scores, RTO and RPO. The engine and the HTTP
//! telemetry record most of them; the drill's report step calls [`drill_measured`].

use std::sync::{Arc, RwLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry_sdk::metrics::SdkMeterProvider;

use super::SCOPE;
use crate::envelope::WorkflowKind;

/// Instrument names, for dashboards and tests.
pub mod names {
    /// Histogram (s): one step run, by `workflow.kind`, `step.name`, `outcome`.
    pub const STEP_DURATION: &str = "backup_pilot.step.duration";
    /// Counter: step retries by `workflow.kind`, `step.name`, `retry.reason`.
    pub const STEP_RETRIES: &str = "backup_pilot.step.retries";
    /// Counter: ARM requests by `http.request.method`, `http.response.status_code`.
    pub const ARM_CALLS: &str = "backup_pilot.arm.calls";
    /// Counter: 429 answers by `peer` (arm, kubernetes, servicebus, blob).
    pub const THROTTLES: &str = "backup_pilot.throttles";
    /// Histogram (s): outbound HTTP requests (semantic convention name).
    pub const HTTP_CLIENT_DURATION: &str = "http.client.request.duration";
    /// Histogram (s): from the event that started onboarding to "protected".
    pub const TIME_TO_PROTECTED: &str = "backup_pilot.onboarding.time_to_protected";
    /// Histogram (s): a drill's measured recovery time (request → verified), by `cluster`
    /// and `verdict`.
    pub const DRILL_RTO: &str = "backup_pilot.drill.rto";
    /// Histogram (s): the age of the recovery point a drill restored, by `cluster` and
    /// `verdict`.
    pub const DRILL_RPO: &str = "backup_pilot.drill.rpo";
    /// Histogram (0–100): a drill's score, by `cluster` and `verdict`.
    pub const DRILL_SCORE: &str = "backup_pilot.drill.score";
    /// Counter: finished drills by `outcome` (passed, failed).
    pub const DRILL_OUTCOMES: &str = "backup_pilot.drill.outcomes";
}

struct Instruments {
    step_duration: Histogram<f64>,
    step_retries: Counter<u64>,
    arm_calls: Counter<u64>,
    throttles: Counter<u64>,
    http_duration: Histogram<f64>,
    time_to_protected: Histogram<f64>,
    drill_rto: Histogram<f64>,
    drill_rpo: Histogram<f64>,
    drill_score: Histogram<f64>,
    drill_outcomes: Counter<u64>,
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        let seconds = |name: &'static str, description: &'static str, bounds: &[f64]| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(bounds.to_vec())
                .build()
        };
        let counter = |name: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_description(description)
                .build()
        };
        const FAST: [f64; 14] = [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
        ];
        const SLOW: [f64; 12] = [
            30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
            86400.0,
        ];
        Self {
            step_duration: seconds(names::STEP_DURATION, "Duration of one step run", &FAST),
            step_retries: counter(names::STEP_RETRIES, "Step runs that scheduled a retry"),
            arm_calls: counter(names::ARM_CALLS, "Azure Resource Manager requests"),
            throttles: counter(names::THROTTLES, "Requests answered 429 Too Many Requests"),
            http_duration: seconds(
                names::HTTP_CLIENT_DURATION,
                "Duration of outbound HTTP requests",
                &FAST,
            ),
            time_to_protected: seconds(
                names::TIME_TO_PROTECTED,
                "Time from the cluster event to a protected cluster",
                &SLOW,
            ),
            drill_rto: seconds(names::DRILL_RTO, "Measured restore time of a drill", &SLOW),
            drill_rpo: seconds(
                names::DRILL_RPO,
                "Age of the recovery point a drill restored",
                &SLOW,
            ),
            drill_score: meter
                .f64_histogram(names::DRILL_SCORE)
                .with_unit("1")
                .with_description("A drill's score out of 100")
                .with_boundaries(vec![
                    10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 100.0,
                ])
                .build(),
            drill_outcomes: counter(names::DRILL_OUTCOMES, "Finished restore drills"),
        }
    }
}

static INSTRUMENTS: RwLock<Option<Arc<Instruments>>> = RwLock::new(None);

/// Makes `provider` the global meter provider and rebuilds the instruments on it.
pub fn install(provider: SdkMeterProvider) {
    opentelemetry::global::set_meter_provider(provider);
    let fresh = Arc::new(Instruments::new(&opentelemetry::global::meter(SCOPE)));
    if let Ok(mut slot) = INSTRUMENTS.write() {
        *slot = Some(fresh);
    }
}

fn instruments() -> Arc<Instruments> {
    if let Ok(slot) = INSTRUMENTS.read()
        && let Some(i) = slot.as_ref()
    {
        return i.clone();
    }
    let built = Arc::new(Instruments::new(&opentelemetry::global::meter(SCOPE)));
    match INSTRUMENTS.write() {
        Ok(mut slot) => slot.get_or_insert(built).clone(),
        Err(_) => built,
    }
}

/// One step run finished with `outcome` (advanced, retrying, done, failed, error).
pub fn step_finished(kind: WorkflowKind, step: &str, outcome: &str, took: Duration) {
    instruments().step_duration.record(
        took.as_secs_f64(),
        &[
            KeyValue::new("workflow.kind", kind.as_str()),
            KeyValue::new("step.name", step.to_string()),
            KeyValue::new("outcome", outcome.to_string()),
        ],
    );
}

/// A step scheduled a retry; `reason` is a class such as `throttled`, `server_error`,
/// `connection`, `auth`, `transient` or `waiting` (the step itself asked to look again).
pub fn step_retried(kind: WorkflowKind, step: &str, reason: &str) {
    instruments().step_retries.add(
        1,
        &[
            KeyValue::new("workflow.kind", kind.as_str()),
            KeyValue::new("step.name", step.to_string()),
            KeyValue::new("retry.reason", reason.to_string()),
        ],
    );
}

/// One ARM request: `status` is the HTTP status, or `None` when no answer came (the
/// attribute is then `error.type`). Recorded by [`super::http::HttpCall`] for ARM calls.
pub fn arm_call(method: &str, status: Option<u16>) {
    let outcome = match status {
        Some(code) => KeyValue::new("http.response.status_code", i64::from(code)),
        None => KeyValue::new("error.type", "no_response"),
    };
    instruments().arm_calls.add(
        1,
        &[
            KeyValue::new("http.request.method", method.to_ascii_uppercase()),
            outcome,
        ],
    );
}

/// A peer answered 429.
pub fn throttled(peer: &str) {
    instruments()
        .throttles
        .add(1, &[KeyValue::new("peer", peer.to_string())]);
}

/// One outbound HTTP request's duration.
pub fn http_request(peer: &str, method: &str, status: Option<u16>, took: Duration) {
    let mut attributes = vec![
        KeyValue::new("peer", peer.to_string()),
        KeyValue::new("http.request.method", method.to_ascii_uppercase()),
    ];
    match status {
        Some(code) => attributes.push(KeyValue::new("http.response.status_code", i64::from(code))),
        None => attributes.push(KeyValue::new("error.type", "no_response")),
    }
    instruments()
        .http_duration
        .record(took.as_secs_f64(), &attributes);
}

/// An onboarding workflow reached "protected" `took` after it started.
pub fn time_to_protected(took: Duration) {
    instruments()
        .time_to_protected
        .record(took.as_secs_f64(), &[]);
}

/// How a drill ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrillOutcome {
    /// The restore worked and its checks passed.
    Passed,
    /// The drill failed.
    Failed,
}

impl DrillOutcome {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
        }
    }
}

/// A drill workflow finished (recorded by the engine when a drill is done or failed).
pub fn drill_finished(outcome: DrillOutcome) {
    instruments()
        .drill_outcomes
        .add(1, &[KeyValue::new("outcome", outcome.as_str())]);
}

/// What a drill measured, for its metrics.
#[derive(Debug, Clone, Copy)]
pub struct DrillMeasures<'a> {
    /// The drilled cluster's resource id.
    pub cluster: &'a str,
    /// pass, degraded or fail.
    pub verdict: &'a str,
    /// Its score out of 100.
    pub score: Option<u8>,
    /// Request → verified.
    pub rto: Option<Duration>,
    /// The restored recovery point's age.
    pub rpo: Option<Duration>,
}

/// A drill's report was written: its score, RTO and RPO (each when measured), with the
/// cluster and verdict as attributes (called by the report step).
pub fn drill_measured(m: &DrillMeasures<'_>) {
    let attributes = [
        KeyValue::new("cluster", m.cluster.to_ascii_lowercase()),
        KeyValue::new("verdict", m.verdict.to_string()),
    ];
    let i = instruments();
    if let Some(score) = m.score {
        i.drill_score.record(f64::from(score), &attributes);
    }
    if let Some(rto) = m.rto {
        i.drill_rto.record(rto.as_secs_f64(), &attributes);
    }
    if let Some(rpo) = m.rpo {
        i.drill_rpo.record(rpo.as_secs_f64(), &attributes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::metrics::InMemoryMetricExporter;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};

    fn sums(exporter: &InMemoryMetricExporter, name: &str) -> Vec<(Vec<KeyValue>, u64)> {
        let mut out = Vec::new();
        for rm in exporter.get_finished_metrics().unwrap() {
            for sm in rm.scope_metrics() {
                for m in sm.metrics().filter(|m| m.name() == name) {
                    if let AggregatedMetrics::U64(MetricData::Sum(sum)) = m.data() {
                        for p in sum.data_points() {
                            out.push((p.attributes().cloned().collect(), p.value()));
                        }
                    }
                }
            }
        }
        out
    }

    fn histogram_counts(
        exporter: &InMemoryMetricExporter,
        name: &str,
    ) -> Vec<(Vec<KeyValue>, u64)> {
        let mut out = Vec::new();
        for rm in exporter.get_finished_metrics().unwrap() {
            for sm in rm.scope_metrics() {
                for m in sm.metrics().filter(|m| m.name() == name) {
                    if let AggregatedMetrics::F64(MetricData::Histogram(h)) = m.data() {
                        for p in h.data_points() {
                            out.push((p.attributes().cloned().collect(), p.count()));
                        }
                    }
                }
            }
        }
        out
    }

    /// The one test in this binary that installs a meter provider; every other test records
    /// into it too, so it only looks at attribute values it alone uses.
    #[test]
    fn instruments_record_with_their_attributes() {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_periodic_exporter(exporter.clone())
            .build();
        install(provider.clone());

        step_finished(
            WorkflowKind::Drill,
            "metrics-test-step",
            "done",
            Duration::from_millis(20),
        );
        step_retried(WorkflowKind::Drill, "metrics-test-step", "throttled");
        step_retried(WorkflowKind::Drill, "metrics-test-step", "throttled");
        arm_call("put", Some(429));
        throttled("metrics-test-peer");
        drill_measured(&DrillMeasures {
            cluster: "/subscriptions/s/metrics-test-cluster",
            verdict: "degraded",
            score: Some(80),
            rto: Some(Duration::from_secs(600)),
            rpo: Some(Duration::from_secs(7200)),
        });
        provider.force_flush().unwrap();

        let retries = sums(&exporter, names::STEP_RETRIES);
        let ours = retries
            .iter()
            .find(|(attrs, _)| attrs.contains(&KeyValue::new("step.name", "metrics-test-step")))
            .expect("retries recorded");
        assert_eq!(ours.1, 2);
        assert!(ours.0.contains(&KeyValue::new("retry.reason", "throttled")));

        let arm = sums(&exporter, names::ARM_CALLS);
        assert!(arm.iter().any(|(attrs, n)| *n >= 1
            && attrs.contains(&KeyValue::new("http.request.method", "PUT"))
            && attrs.contains(&KeyValue::new("http.response.status_code", 429i64))));
        assert!(sums(&exporter, names::THROTTLES).iter().any(
            |(attrs, n)| *n == 1 && attrs.contains(&KeyValue::new("peer", "metrics-test-peer"))
        ));

        let steps = histogram_counts(&exporter, names::STEP_DURATION);
        assert!(steps.iter().any(|(attrs, n)| *n == 1
            && attrs.contains(&KeyValue::new("step.name", "metrics-test-step"))
            && attrs.contains(&KeyValue::new("outcome", "done"))));
        for name in [names::DRILL_RTO, names::DRILL_RPO, names::DRILL_SCORE] {
            assert!(
                histogram_counts(&exporter, name)
                    .iter()
                    .any(|(attrs, n)| *n == 1
                        && attrs.contains(&KeyValue::new(
                            "cluster",
                            "/subscriptions/s/metrics-test-cluster"
                        ))
                        && attrs.contains(&KeyValue::new("verdict", "degraded"))),
                "{name}"
            );
        }
    }
}
