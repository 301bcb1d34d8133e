//! .NET `TimeSpan` text (`[d.]hh:mm:ss[.fffffff]`), the form host.json (`functionTimeout`,
//! `maxAutoLockRenewalDuration`) and the Service Bus batch send (`TimeToLiveTimeSpan`) use.

use std::time::Duration;

/// Why a time span could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeSpanError {
    /// Not `[d.]hh:mm:ss[.fffffff]`, or a component out of range.
    #[error("{0:?} is not a time span; expected [d.]hh:mm:ss[.fffffff], e.g. 00:05:00")]
    Malformed(String),
}

/// Parses `[d.]hh:mm:ss[.fffffff]` (hours < 24, minutes and seconds < 60).
///
/// # Errors
/// [`TimeSpanError::Malformed`].
pub fn parse_timespan(text: &str) -> Result<Duration, TimeSpanError> {
    let malformed = || TimeSpanError::Malformed(text.to_string());
    let trimmed = text.trim();
    let mut parts = trimmed.split(':');
    let (Some(first), Some(minutes), Some(seconds), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let (days, hours) = match first.split_once('.') {
        Some((d, h)) => (number(d).ok_or_else(malformed)?, h),
        None => (0, first),
    };
    let hours = number(hours).filter(|h| *h < 24).ok_or_else(malformed)?;
    let minutes = number(minutes).filter(|m| *m < 60).ok_or_else(malformed)?;
    let (whole, fraction) = match seconds.split_once('.') {
        Some((s, f)) if !f.is_empty() && f.len() <= 7 && f.bytes().all(|b| b.is_ascii_digit()) => {
            (s, f)
        }
        Some(_) => return Err(malformed()),
        None => (seconds, ""),
    };
    let whole = number(whole).filter(|s| *s < 60).ok_or_else(malformed)?;
    let nanos = if fraction.is_empty() {
        0
    } else {
        let digits: u32 = fraction.parse().map_err(|_| malformed())?;
        let scale = 10u32.pow(9 - u32::try_from(fraction.len()).map_err(|_| malformed())?);
        digits * scale
    };
    let secs = days
        .checked_mul(86_400)
        .and_then(|d| d.checked_add(hours * 3600 + minutes * 60 + whole))
        .ok_or_else(malformed)?;
    Ok(Duration::new(secs, nanos))
}

fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_forms_host_json_and_service_bus_use() {
        assert_eq!(parse_timespan("00:05:00"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_timespan("0.00:00:40"), Ok(Duration::from_secs(40)));
        assert_eq!(
            parse_timespan("1.02:03:04.5"),
            Ok(Duration::new(86_400 + 2 * 3600 + 3 * 60 + 4, 500_000_000))
        );
        for bad in [
            "",
            "5",
            "00:60:00",
            "24:00:00",
            "a:b:c",
            "00:00:00.",
            "1:2:3:4",
        ] {
            assert!(parse_timespan(bad).is_err(), "{bad}");
        }
    }
}
