//! Telemetry: a readable console log always (filtered by `RUST_LOG`), OpenTelemetry traces and
//! metrics exported over OTLP/HTTP only when the standard `OTEL_*` variables ask for it.
//! Spans carry the W3C trace context from message to message, so one workflow is one trace
//! ([`propagation`]); [`spans`], [`http`] and [`metrics`] hold the instruments.

pub mod http;
pub mod metrics;
pub mod propagation;
pub mod redact;
pub mod spans;

use std::fmt;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Level};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

pub use propagation::trace_id;

/// The service name when `OTEL_SERVICE_NAME` is not set.
pub const DEFAULT_SERVICE_NAME: &str = "backup-pilot";

/// The console filter when `RUST_LOG` is not set: this service at `info`, the OpenTelemetry
/// SDK's own diagnostics only when they are warnings.
pub const DEFAULT_LOG_FILTER: &str =
    "info,opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry_otlp=warn";

/// The instrumentation scope of every span and instrument.
pub const SCOPE: &str = "backup-pilot";

/// The crate whose spans go to OpenTelemetry (library internals stay in the console log).
const TRACED_TARGET: &str = "backup_pilot";

/// What to export, read from the standard OpenTelemetry variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// `OTEL_SDK_DISABLED=true`: no spans, no metrics; messages still carry a trace context.
    pub sdk_disabled: bool,
    /// `OTEL_SERVICE_NAME`, else [`DEFAULT_SERVICE_NAME`].
    pub service_name: String,
    /// Export traces: `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
    /// set and `OTEL_TRACES_EXPORTER` is not `none`.
    pub export_traces: bool,
    /// Export metrics: `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is
    /// set and `OTEL_METRICS_EXPORTER` is not `none`.
    pub export_metrics: bool,
    /// `RUST_LOG`, else [`DEFAULT_LOG_FILTER`].
    pub log_filter: String,
    /// Info and debug lines to stdout, warnings and errors to stderr. For `serve`: the
    /// Functions host logs a custom handler's stderr lines as errors and stdout as information.
    /// Other commands log everything to stderr, keeping stdout for their output.
    pub split_console_by_level: bool,
}

impl TelemetrySettings {
    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let off = |k: &str| get(k).is_some_and(|v| v.eq_ignore_ascii_case("none"));
        let endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
        Self {
            sdk_disabled: get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")),
            service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| DEFAULT_SERVICE_NAME.into()),
            export_traces: (endpoint || get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some())
                && !off("OTEL_TRACES_EXPORTER"),
            export_metrics: (endpoint || get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").is_some())
                && !off("OTEL_METRICS_EXPORTER"),
            log_filter: get("RUST_LOG").unwrap_or_else(|| DEFAULT_LOG_FILTER.into()),
            split_console_by_level: false,
        }
    }
}

/// Keeps the providers alive; flushes and shuts them down when dropped, so the last spans and
/// metric points of a short command are exported before the process exits.
#[must_use = "telemetry is flushed when the guard drops; keep it until the process ends"]
#[derive(Default)]
pub struct TelemetryGuard {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("traces", &self.tracer.is_some())
            .field("metrics", &self.meter.is_some())
            .finish()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(tracer) = self.tracer.take() {
            let _ = tracer.force_flush();
            let _ = tracer.shutdown();
        }
        if let Some(meter) = self.meter.take() {
            let _ = meter.force_flush();
            let _ = meter.shutdown();
        }
    }
}

/// Installs the global subscriber: the console log, and (unless the SDK is disabled) an
/// OpenTelemetry layer whose spans are exported only when configured. Without export the
/// spans still get real ids, so every message carries its workflow's trace context.
/// Call once, outside any async runtime (the OTLP exporters run on their own threads); a
/// second call installs nothing and returns an empty guard. Export problems are logged as
/// warnings and never stop the service.
pub fn init(settings: &TelemetrySettings) -> TelemetryGuard {
    let console = console_layer(&settings.log_filter, settings.split_console_by_level);
    if settings.sdk_disabled {
        let _ = tracing_subscriber::registry().with(console).try_init();
        return TelemetryGuard::default();
    }
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    let mut warnings = Vec::new();
    let mut tracer_builder = SdkTracerProvider::builder().with_resource(resource.clone());
    if settings.export_traces {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => tracer_builder = tracer_builder.with_batch_exporter(exporter),
            Err(e) => warnings.push(format!(
                "trace export is off: {e}; check OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
            )),
        }
    }
    let tracer_provider = tracer_builder.build();
    let meter_provider = if settings.export_metrics {
        match opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => Some(
                SdkMeterProvider::builder()
                    .with_resource(resource)
                    .with_periodic_exporter(exporter)
                    .build(),
            ),
            Err(e) => {
                warnings.push(format!(
                    "metric export is off: {e}; check OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
                ));
                None
            }
        }
    } else {
        None
    };
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer_provider.tracer(SCOPE))
        .with_filter(Targets::new().with_target(TRACED_TARGET, Level::INFO));
    if tracing_subscriber::registry()
        .with(console)
        .with(otel)
        .try_init()
        .is_err()
    {
        return TelemetryGuard::default();
    }
    if let Some(provider) = &meter_provider {
        metrics::install(provider.clone());
    }
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    tracing::debug!(
        traces = settings.export_traces,
        metrics = settings.export_metrics,
        "telemetry ready"
    );
    TelemetryGuard {
        tracer: Some(tracer_provider),
        meter: meter_provider,
    }
}

/// A subscriber that sends this crate's spans to `exporter` as each span ends, for tests
/// (e.g. with `opentelemetry_sdk::trace::InMemorySpanExporter`). Install it for one test with
/// `tracing::dispatcher::set_default` on a current-thread runtime.
pub fn capture_spans(exporter: impl SpanExporter + 'static) -> (Dispatch, SdkTracerProvider) {
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .build();
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(SCOPE))
        .with_filter(Targets::new().with_target(TRACED_TARGET, Level::INFO));
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(otel));
    (dispatch, provider)
}

fn console_layer<S>(filter: &str, split_by_level: bool) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt as _};
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let writer = if split_by_level {
        BoxMakeWriter::new(
            std::io::stderr
                .with_max_level(Level::WARN)
                .or_else(std::io::stdout),
        )
    } else {
        BoxMakeWriter::new(std::io::stderr)
    };
    tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(false)
        .fmt_fields(ReadableFields)
        .with_filter(filter)
}

/// Console field formatting: `key=value` with strings unquoted, and the `otel.*` fields that
/// only steer the OpenTelemetry layer left out.
struct ReadableFields;

impl<'writer> FormatFields<'writer> for ReadableFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = FieldWriter {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }

    fn add_fields(
        &self,
        current: &'writer mut tracing_subscriber::fmt::FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut visitor = FieldWriter {
            first: current.fields.is_empty(),
            writer: current.as_writer(),
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct FieldWriter<'a> {
    writer: Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl FieldWriter<'_> {
    fn write(&mut self, field: &Field, value: &dyn fmt::Display) {
        if self.result.is_err() || field.name().starts_with("otel.") {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            write!(self.writer, "{sep}{value}")
        } else {
            write!(self.writer, "{sep}{}={value}", field.name())
        };
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format_args!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> TelemetrySettings {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TelemetrySettings::from_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn nothing_is_exported_unless_an_endpoint_is_set() {
        let s = settings(&[]);
        assert!(!s.export_traces && !s.export_metrics && !s.sdk_disabled);
        assert_eq!(s.service_name, "backup-pilot");
        assert_eq!(s.log_filter, DEFAULT_LOG_FILTER);

        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_SERVICE_NAME", "pilot-prod"),
        ]);
        assert!(s.export_traces && !s.export_metrics);
        assert_eq!(s.service_name, "pilot-prod");

        let s = settings(&[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://c/v1/metrics")]);
        assert!(!s.export_traces && s.export_metrics);

        assert!(settings(&[("OTEL_SDK_DISABLED", "TRUE")]).sdk_disabled);
        assert!(!settings(&[("OTEL_SDK_DISABLED", "no")]).sdk_disabled);
    }
}
