//! Time, as the service sees it. Production uses the system clock; the local stand-ins and
//! tests use a scaled clock (hours of waiting pass in seconds) or a manual one (advanced by
//! hand) — or a paced one, a scaled clock whose speed the local runner changes while its host
//! is behind ([`PacedClock`]). Every "now" in the product and the stand-ins comes from a
//! [`Clock`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current (possibly virtual) UTC time.
    fn now(&self) -> OffsetDateTime;

    /// How much real time passes for `virtual_span` of this clock's time. Stand-ins use it to
    /// sleep until a virtual instant; a manual clock never advances by itself, so it answers a
    /// short polling interval.
    fn real_duration(&self, virtual_span: Duration) -> Duration;

    /// Virtual seconds per real second: above 1 only for a [`ScaledClock`]. A stand-in on such
    /// a clock states delays (`Retry-After`) in real seconds, so any client can take them
    /// literally.
    fn scale(&self) -> f64 {
        1.0
    }

    /// How much of this clock's time passes during `real_span` of real time: what a delay a
    /// peer states in real time (a stand-in's `Retry-After` at [`Self::scale`]) means here.
    fn virtual_duration(&self, real_span: Duration) -> Duration {
        real_span.mul_f64(self.scale())
    }
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
    fn real_duration(&self, virtual_span: Duration) -> Duration {
        virtual_span
    }
}

/// Virtual time running `scale` times faster than the wall clock from a shared epoch:
/// `virtual = epoch + (wall - epoch) * scale`. Two processes given the same epoch and scale
/// agree on the time without talking to each other, which is how the local host and the
/// handler process it starts share one virtual clock.
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    epoch: SystemTime,
    scale: f64,
}

impl ScaledClock {
    /// A clock that starts at `epoch` and runs `scale` times faster than real time.
    ///
    /// # Errors
    /// A scale that is not a finite number ≥ 1.
    pub fn new(epoch: SystemTime, scale: f64) -> Result<Self, String> {
        check_scale(scale)?;
        Ok(Self { epoch, scale })
    }

    /// The epoch as Unix milliseconds, to hand to another process.
    pub fn epoch_unix_millis(&self) -> u128 {
        self.epoch
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    }

    /// The time scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> OffsetDateTime {
        let wall = SystemTime::now();
        let elapsed = wall.duration_since(self.epoch).unwrap_or_default();
        let virtual_elapsed = elapsed.mul_f64(self.scale);
        OffsetDateTime::from(self.epoch) + virtual_elapsed
    }
    fn real_duration(&self, virtual_span: Duration) -> Duration {
        virtual_span.div_f64(self.scale)
    }
    fn scale(&self) -> f64 {
        self.scale
    }
}

/// One stretch of a [`Pace`]: from real time `real_ns` (Unix nanoseconds) the virtual time is
/// `virtual_ns + (real - real_ns) * scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaceSegment {
    /// Where the stretch starts, real Unix nanoseconds.
    pub real_ns: i128,
    /// The virtual Unix nanoseconds at that instant.
    pub virtual_ns: i128,
    /// Virtual seconds per real second from then on.
    pub scale: f64,
}

/// A piecewise-linear map from real to virtual time: a scaled clock whose scale changes. The
/// local runner slows it down while the host has a backlog of due messages, so virtual
/// deadlines are not consumed by a busy machine. Changes take effect [`PACE_LEAD`] after they
/// are made, so every process that re-reads the pace within that time maps every instant alike.
#[derive(Debug, Clone, PartialEq)]
pub struct Pace {
    segments: Vec<PaceSegment>,
}

/// How far ahead of real time a change of pace takes effect.
pub const PACE_LEAD: Duration = Duration::from_millis(150);
/// How often a [`PacedClock`] re-reads its file (well below [`PACE_LEAD`]).
pub const PACE_REFRESH: Duration = Duration::from_millis(25);
/// Segments a pace keeps (older ones are behind every reader).
const PACE_SEGMENTS_KEPT: usize = 4;

fn unix_ns(at: SystemTime) -> i128 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

impl Pace {
    /// Virtual time equal to real time at `epoch`, running `scale` times faster from there.
    ///
    /// # Errors
    /// A scale that is not a finite number ≥ 1.
    pub fn new(epoch: SystemTime, scale: f64) -> Result<Self, String> {
        check_scale(scale)?;
        let at = unix_ns(epoch);
        Ok(Self {
            segments: vec![PaceSegment {
                real_ns: at,
                virtual_ns: at,
                scale,
            }],
        })
    }

    fn segment_at(&self, real_ns: i128) -> PaceSegment {
        let first = self.segments[0];
        self.segments
            .iter()
            .rev()
            .find(|s| s.real_ns <= real_ns)
            .copied()
            .unwrap_or(first)
    }

    /// Virtual Unix nanoseconds at real Unix nanoseconds `real_ns`.
    pub fn virtual_ns(&self, real_ns: i128) -> i128 {
        let s = self.segment_at(real_ns);
        let elapsed = (real_ns - s.real_ns).max(0);
        s.virtual_ns + (elapsed as f64 * s.scale) as i128
    }

    /// The scale in force at real time `at`.
    pub fn scale_at(&self, at: SystemTime) -> f64 {
        self.segment_at(unix_ns(at)).scale
    }

    /// The scale of the newest change (in force from its instant on).
    pub fn latest_scale(&self) -> f64 {
        self.segments[self.segments.len() - 1].scale
    }

    /// This pace with the scale changed to `scale` from real time `at` on, continuously
    /// (virtual time does not jump).
    ///
    /// # Errors
    /// A scale that is not a finite number ≥ 1.
    pub fn changed(&self, at: SystemTime, scale: f64) -> Result<Self, String> {
        check_scale(scale)?;
        let real_ns = unix_ns(at).max(self.segments[self.segments.len() - 1].real_ns);
        let mut segments = self.segments.clone();
        segments.push(PaceSegment {
            real_ns,
            virtual_ns: self.virtual_ns(real_ns),
            scale,
        });
        let drop = segments.len().saturating_sub(PACE_SEGMENTS_KEPT);
        segments.drain(..drop);
        Ok(Self { segments })
    }

    /// The file form: one `real_ns virtual_ns scale` line per segment.
    pub fn render(&self) -> String {
        self.segments
            .iter()
            .map(|s| format!("{} {} {}\n", s.real_ns, s.virtual_ns, s.scale))
            .collect()
    }

    /// Reads [`Self::render`]'s form.
    ///
    /// # Errors
    /// Text that is not that form.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut parts = line.split_whitespace();
            let mut next = || {
                parts
                    .next()
                    .ok_or_else(|| format!("short pace line {line:?}"))
            };
            let real_ns = next()?.parse::<i128>().map_err(|e| e.to_string())?;
            let virtual_ns = next()?.parse::<i128>().map_err(|e| e.to_string())?;
            let scale = next()?.parse::<f64>().map_err(|e| e.to_string())?;
            check_scale(scale)?;
            segments.push(PaceSegment {
                real_ns,
                virtual_ns,
                scale,
            });
        }
        if segments.is_empty() {
            return Err("an empty pace".into());
        }
        Ok(Self { segments })
    }

    /// Writes the pace to `path` atomically (a sibling file renamed over it).
    ///
    /// # Errors
    /// The file system's.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.render())?;
        std::fs::rename(&tmp, path)
    }
}

fn check_scale(scale: f64) -> Result<(), String> {
    if !scale.is_finite() || scale < 1.0 {
        return Err(format!(
            "time scale must be a finite number >= 1, got {scale}"
        ));
    }
    Ok(())
}

/// A [`Clock`] following a [`Pace`] kept in a file, re-read every [`PACE_REFRESH`]: the local
/// runner and the handler it spawns share one virtual clock whose speed the runner changes.
/// It never goes backwards (a reader that saw a change late holds still until it catches up).
#[derive(Debug)]
pub struct PacedClock {
    path: PathBuf,
    state: Mutex<PacedState>,
}

#[derive(Debug)]
struct PacedState {
    pace: Pace,
    loaded: std::time::Instant,
    last_ns: i128,
}

impl PacedClock {
    /// A clock following the pace in `path`.
    ///
    /// # Errors
    /// A file that cannot be read or is not a pace.
    pub fn open(path: &Path) -> Result<Self, String> {
        let pace = read_pace(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            state: Mutex::new(PacedState {
                pace,
                loaded: std::time::Instant::now(),
                last_ns: i128::MIN,
            }),
        })
    }

    /// Writes `pace` to a new file at `path` and follows it.
    ///
    /// # Errors
    /// The file system's.
    pub fn create(path: &Path, pace: Pace) -> std::io::Result<Self> {
        pace.write(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            state: Mutex::new(PacedState {
                pace,
                loaded: std::time::Instant::now(),
                last_ns: i128::MIN,
            }),
        })
    }

    /// The file every process of the run follows.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes the scale [`PACE_LEAD`] from now, for every process following the file.
    ///
    /// # Errors
    /// An invalid scale, or the file system's.
    pub fn set_scale(&self, scale: f64) -> Result<(), String> {
        let mut state = self.lock();
        let pace = state.pace.changed(SystemTime::now() + PACE_LEAD, scale)?;
        pace.write(&self.path).map_err(|e| e.to_string())?;
        state.pace = pace;
        state.loaded = std::time::Instant::now();
        Ok(())
    }

    /// The scale most recently set (in force now or within [`PACE_LEAD`]).
    pub fn target_scale(&self) -> f64 {
        self.lock().pace.latest_scale()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PacedState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fresh(&self) -> std::sync::MutexGuard<'_, PacedState> {
        let mut state = self.lock();
        if state.loaded.elapsed() >= PACE_REFRESH {
            // A file being replaced or unreadable for a moment: keep the last pace.
            if let Ok(pace) = read_pace(&self.path) {
                state.pace = pace;
            }
            state.loaded = std::time::Instant::now();
        }
        state
    }
}

fn read_pace(path: &Path) -> Result<Pace, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("could not read the clock's pace {}: {e}", path.display()))?;
    Pace::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl Clock for PacedClock {
    fn now(&self) -> OffsetDateTime {
        let mut state = self.fresh();
        let now = state
            .pace
            .virtual_ns(unix_ns(SystemTime::now()))
            .max(state.last_ns);
        state.last_ns = now;
        OffsetDateTime::from_unix_timestamp_nanos(now).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
    fn real_duration(&self, virtual_span: Duration) -> Duration {
        virtual_span.div_f64(self.scale())
    }
    fn scale(&self) -> f64 {
        self.fresh().pace.scale_at(SystemTime::now())
    }
}

/// A clock that moves only when told to; for deterministic tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A manual clock showing `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
    fn real_duration(&self, _virtual_span: Duration) -> Duration {
        Duration::from_millis(5)
    }
}

/// RFC 3339 text of a time (the format every status output and payload fact uses).
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// Time from `now` until `at`, zero if `at` has passed.
pub fn until(now: OffsetDateTime, at: OffsetDateTime) -> Duration {
    let span = at - now;
    if span.is_negative() {
        Duration::ZERO
    } else {
        span.unsigned_abs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_clock_runs_faster_and_agrees_across_instances() {
        let epoch = SystemTime::now() - Duration::from_secs(10);
        let a = ScaledClock::new(epoch, 60.0).unwrap();
        let b = ScaledClock::new(epoch, 60.0).unwrap();
        let virtual_elapsed = a.now() - OffsetDateTime::from(epoch);
        assert!(
            virtual_elapsed >= time::Duration::seconds(599),
            "{virtual_elapsed}"
        );
        let skew = (a.now() - b.now()).abs();
        assert!(skew < time::Duration::seconds(5), "{skew}");
        assert_eq!(
            a.real_duration(Duration::from_secs(60)),
            Duration::from_secs(1)
        );
        assert_eq!(
            a.virtual_duration(Duration::from_millis(500)),
            Duration::from_secs(30)
        );
        assert_eq!(
            SystemClock.virtual_duration(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn scale_below_one_is_refused() {
        assert!(ScaledClock::new(SystemTime::now(), 0.5).is_err());
        assert!(ScaledClock::new(SystemTime::now(), f64::NAN).is_err());
    }

    #[test]
    fn a_pace_slows_down_without_a_jump_and_survives_its_file() {
        let epoch = UNIX_EPOCH + Duration::from_secs(1_000);
        let pace = Pace::new(epoch, 600.0).unwrap();
        let at = |secs: u64| unix_ns(epoch + Duration::from_secs(secs));
        assert_eq!(pace.virtual_ns(at(10)) - at(0), 6_000 * 1_000_000_000);
        let slow = pace.changed(epoch + Duration::from_secs(10), 2.0).unwrap();
        // Up to the change both agree; after it the slow one gains 2 s per second.
        assert_eq!(slow.virtual_ns(at(10)), pace.virtual_ns(at(10)));
        assert_eq!(
            slow.virtual_ns(at(15)) - slow.virtual_ns(at(10)),
            10_000_000_000
        );
        assert_eq!(slow.virtual_ns(at(5)), pace.virtual_ns(at(5)));
        assert_eq!(slow.scale_at(epoch + Duration::from_secs(11)), 2.0);
        assert_eq!(slow.scale_at(epoch + Duration::from_secs(9)), 600.0);
        assert_eq!(Pace::parse(&slow.render()).unwrap(), slow);
        assert!(Pace::parse("").is_err());
        assert!(Pace::parse("1 2 0.5").is_err());
        assert!(pace.changed(epoch, 0.0).is_err());
        let mut many = pace;
        for i in 0..10 {
            many = many
                .changed(epoch + Duration::from_secs(i), 1.0 + i as f64)
                .unwrap();
        }
        assert_eq!(many.segments.len(), PACE_SEGMENTS_KEPT);
        assert_eq!(many.latest_scale(), 10.0);
    }

    #[test]
    fn processes_following_one_pace_file_agree_and_never_go_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pace");
        let writer =
            PacedClock::create(&path, Pace::new(SystemTime::now(), 600.0).unwrap()).unwrap();
        let reader = PacedClock::open(&path).unwrap();
        assert_eq!(reader.scale(), 600.0);
        let before = reader.now();
        writer.set_scale(1.0).unwrap();
        assert_eq!(writer.target_scale(), 1.0);
        std::thread::sleep(PACE_LEAD + PACE_REFRESH + Duration::from_millis(20));
        assert_eq!(reader.scale(), 1.0);
        assert_eq!(writer.scale(), 1.0);
        let (a, b) = (writer.now(), reader.now());
        assert!((a - b).abs() < time::Duration::milliseconds(50), "{a} {b}");
        assert!(reader.now() >= before);
        assert_eq!(
            reader.real_duration(Duration::from_secs(2)),
            Duration::from_secs(2)
        );
        assert!(PacedClock::open(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(time::macros::datetime!(2026-01-01 00:00 UTC));
        let before = clock.now();
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now() - before, time::Duration::seconds(90));
        assert_eq!(until(clock.now(), before), Duration::ZERO);
    }
}
