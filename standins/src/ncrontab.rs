//! NCRONTAB schedules as the Functions timer trigger reads them: six fields
//! `{second} {minute} {hour} {day} {month} {day-of-week}`, each `*`, a number, a range `a-b`,
//! a step `*/n`, `a-b/n` or `a/n`, a comma list, or (month, day of week) a three-letter name.
//! Both day fields must match (NCrontab's rule). Times are UTC.

use time::{Date, Month, OffsetDateTime, Time};

/// Why a schedule could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Not six fields.
    #[error(
        "the schedule {0:?} must have six fields: second minute hour day month day-of-week (e.g. \"0 0 3 * * *\")"
    )]
    FieldCount(String),
    /// One field is malformed or out of range.
    #[error("the {field} field {value:?} of the schedule is invalid: {why}")]
    Field {
        /// Which field.
        field: &'static str,
        /// Its text.
        value: String,
        /// What is wrong.
        why: String,
    },
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    text: String,
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Schedule {
    /// Parses a six-field NCRONTAB expression.
    ///
    /// # Errors
    /// [`ScheduleError`] naming the field.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [sec, min, hour, day, month, dow] = fields[..] else {
            return Err(ScheduleError::FieldCount(text.to_string()));
        };
        Ok(Self {
            text: text.trim().to_string(),
            seconds: field("second", sec, 0, 59, &[])?,
            minutes: field("minute", min, 0, 59, &[])?,
            hours: field("hour", hour, 0, 23, &[])?,
            days: field("day", day, 1, 31, &[])?,
            months: field("month", month, 1, 12, &MONTHS)?,
            weekdays: field("day-of-week", dow, 0, 6, &WEEKDAYS)?,
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The first occurrence strictly after `after` (UTC), or `None` if there is none within
    /// five years (e.g. `0 0 0 30 2 *`).
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let after = after.to_offset(time::UtcOffset::UTC);
        let limit = after + time::Duration::days(5 * 366);
        let mut t = after.replace_nanosecond(0).ok()? + time::Duration::SECOND;
        while t <= limit {
            if !has(self.months, u8::from(t.month()).into()) {
                t = start_of_next_month(t)?;
                continue;
            }
            let weekday = t.weekday().number_days_from_sunday();
            if !has(self.days, t.day().into()) || !has(self.weekdays, weekday.into()) {
                t = start_of_day(t.date().next_day()?, t);
                continue;
            }
            if !has(self.hours, t.hour().into()) {
                t = t.replace_time(Time::from_hms(t.hour(), 0, 0).ok()?) + time::Duration::HOUR;
                continue;
            }
            if !has(self.minutes, t.minute().into()) {
                t = t.replace_time(Time::from_hms(t.hour(), t.minute(), 0).ok()?)
                    + time::Duration::MINUTE;
                continue;
            }
            if !has(self.seconds, t.second().into()) {
                t += time::Duration::SECOND;
                continue;
            }
            return Some(t);
        }
        None
    }
}

fn has(set: u64, value: u32) -> bool {
    set & (1u64 << value) != 0
}

fn start_of_day(date: Date, like: OffsetDateTime) -> OffsetDateTime {
    like.replace_date(date).replace_time(Time::MIDNIGHT)
}

fn start_of_next_month(t: OffsetDateTime) -> Option<OffsetDateTime> {
    let (year, month) = match t.month() {
        Month::December => (t.year() + 1, Month::January),
        m => (t.year(), m.next()),
    };
    Some(start_of_day(
        Date::from_calendar_date(year, month, 1).ok()?,
        t,
    ))
}

fn field(
    name: &'static str,
    text: &str,
    min: u32,
    max: u32,
    names: &[&str],
) -> Result<u64, ScheduleError> {
    let error = |why: String| ScheduleError::Field {
        field: name,
        value: text.to_string(),
        why,
    };
    let value = |part: &str| -> Result<u32, ScheduleError> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(part)) {
            let i = u32::try_from(i).map_err(|_| error("bad name".into()))?;
            return Ok(if min == 1 { i + 1 } else { i });
        }
        let v: u32 = part
            .parse()
            .map_err(|_| error(format!("{part:?} is not a number")))?;
        if v < min || v > max {
            return Err(error(format!("{v} is outside {min}-{max}")));
        }
        Ok(v)
    };
    let mut set = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| error(format!("step {s:?} must be a positive number")))?;
                (r, step)
            }
            None => (part, 1),
        };
        let (from, to) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(error(format!("range {a}-{b} runs backwards")));
            }
            (a, b)
        } else {
            let a = value(range)?;
            // `a/n` runs from a to the end; a bare number is just itself.
            if part.contains('/') { (a, max) } else { (a, a) }
        };
        let mut v = from;
        while v <= to {
            set |= 1u64 << v;
            v += step;
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn next_occurrences_follow_each_form() {
        let at = datetime!(2026-01-02 03:04:05 UTC);
        let next = |s: &str| Schedule::parse(s).unwrap().next_after(at).unwrap();
        assert_eq!(next("0 0 3 * * *"), datetime!(2026-01-03 03:00:00 UTC));
        assert_eq!(next("0 */5 * * * *"), datetime!(2026-01-02 03:05:00 UTC));
        assert_eq!(next("*/10 * * * * *"), datetime!(2026-01-02 03:04:10 UTC));
        assert_eq!(next("0 30 9 * * 1-5"), datetime!(2026-01-02 09:30:00 UTC));
        // 2026-01-02 is a Friday; the next Monday is the 5th.
        assert_eq!(next("0 0 0 * * Mon"), datetime!(2026-01-05 00:00:00 UTC));
        assert_eq!(next("0 0 12 1,15 * *"), datetime!(2026-01-15 12:00:00 UTC));
        assert_eq!(next("0 0 0 1 Mar *"), datetime!(2026-03-01 00:00:00 UTC));
        assert_eq!(next("5/20 * * * * *"), datetime!(2026-01-02 03:04:25 UTC));
        // Both day fields must match: the 13th that is a Friday.
        assert_eq!(next("0 0 0 13 * 5"), datetime!(2026-02-13 00:00:00 UTC));
        assert_eq!(
            Schedule::parse("0 0 0 30 2 *").unwrap().next_after(at),
            None
        );
    }

    #[test]
    fn bad_schedules_name_the_field() {
        assert!(matches!(
            Schedule::parse("0 0 * * *"),
            Err(ScheduleError::FieldCount(_))
        ));
        for (bad, field) in [
            ("60 * * * * *", "second"),
            ("0 0 24 * * *", "hour"),
            ("0 0 0 0 * *", "day"),
            ("0 0 0 * 13 *", "month"),
            ("0 0 0 * * 7", "day-of-week"),
            ("0 */0 * * * *", "minute"),
            ("0 5-1 * * * *", "minute"),
            ("0 x * * * *", "minute"),
        ] {
            match Schedule::parse(bad) {
                Err(ScheduleError::Field { field: f, .. }) => assert_eq!(f, field, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
