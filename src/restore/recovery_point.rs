//! Recovery points (`AzureBackupRecoveryPointResource`, 2023-11-01) and choosing one: the
//! latest, a named one, or the newest at or before a time. A miss says what does exist.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::request::RecoveryPointSelector;

/// One recovery point, as far as a restore cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryPoint {
    /// The name (what `recoveryPointId` in a restore request refers to).
    pub id: String,
    /// When it was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// `Completed` or `Partial` when the service says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The data stores holding it (`recoveryPointDataStoresDetails[].type`).
    #[serde(default)]
    pub data_stores: Vec<String>,
}

impl RecoveryPoint {
    /// True when the service marks it `Partial` (only some items were backed up).
    pub fn is_partial(&self) -> bool {
        self.state
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("Partial"))
    }

    /// Its age at `now` (zero for a time in the future).
    pub fn age(&self, now: OffsetDateTime) -> time::Duration {
        (now - self.time).max(time::Duration::ZERO)
    }
}

/// Why no recovery point could be chosen or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryPointError {
    /// The list answer holds an item that cannot be read.
    #[error("recovery point {id} cannot be read: {problem}")]
    ReadRecoveryPoint {
        /// Its name, if known.
        id: String,
        /// What is wrong.
        problem: String,
    },
    /// Nothing matches.
    #[error("no recovery point matches {wanted}: {available}")]
    ChooseRecoveryPoint {
        /// The selector, in words.
        wanted: String,
        /// What exists.
        available: String,
    },
}

impl RecoveryPoint {
    /// Reads an `AzureBackupRecoveryPointResource`.
    ///
    /// # Errors
    /// [`RecoveryPointError::ReadRecoveryPoint`] without a name or a `recoveryPointTime`.
    pub fn from_arm(resource: &Value) -> Result<Self, RecoveryPointError> {
        let props = resource.get("properties").unwrap_or(&Value::Null);
        let id = resource
            .get("name")
            .and_then(Value::as_str)
            .or_else(|| props.get("recoveryPointId").and_then(Value::as_str))
            .unwrap_or_default()
            .to_string();
        let fail = |problem: String| RecoveryPointError::ReadRecoveryPoint {
            id: if id.is_empty() {
                "(unnamed)".into()
            } else {
                id.clone()
            },
            problem,
        };
        if id.is_empty() {
            return Err(fail("it has no name".into()));
        }
        let raw_time = props
            .get("recoveryPointTime")
            .and_then(Value::as_str)
            .ok_or_else(|| fail("properties.recoveryPointTime is missing".into()))?;
        let time = OffsetDateTime::parse(raw_time, &Rfc3339)
            .map_err(|e| fail(format!("recoveryPointTime {raw_time:?}: {e}")))?;
        Ok(Self {
            id,
            time,
            state: props
                .get("recoveryPointState")
                .and_then(Value::as_str)
                .map(String::from),
            data_stores: props
                .get("recoveryPointDataStoresDetails")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|d| d.get("type").and_then(Value::as_str))
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// Reads a `RecoveryPoints_List` answer.
///
/// # Errors
/// The first item that cannot be read (a restore must not silently skip recovery points).
pub fn from_list(items: &[Value]) -> Result<Vec<RecoveryPoint>, RecoveryPointError> {
    items.iter().map(RecoveryPoint::from_arm).collect()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn describe(points: &[RecoveryPoint]) -> String {
    match (
        points.iter().min_by_key(|p| p.time),
        points.iter().max_by_key(|p| p.time),
    ) {
        (Some(oldest), Some(newest)) => format!(
            "the backup instance has {} recovery point(s), the oldest {} at {}, the newest {} at {}",
            points.len(),
            oldest.id,
            rfc3339(oldest.time),
            newest.id,
            rfc3339(newest.time)
        ),
        _ => "the backup instance has no recovery points yet (has a backup run? trigger an ad-hoc backup or wait for the schedule)".into(),
    }
}

/// Chooses the recovery point `selector` asks for. Ties on time go to the greater id, so the
/// choice is the same on every run.
///
/// # Errors
/// [`RecoveryPointError::ChooseRecoveryPoint`], saying what exists.
pub fn choose<'a>(
    points: &'a [RecoveryPoint],
    selector: &RecoveryPointSelector,
) -> Result<&'a RecoveryPoint, RecoveryPointError> {
    let newest = |candidates: &mut dyn Iterator<Item = &'a RecoveryPoint>| {
        candidates.max_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)))
    };
    let found = match selector {
        RecoveryPointSelector::Latest => newest(&mut points.iter()),
        RecoveryPointSelector::Id(id) => points.iter().find(|p| p.id.eq_ignore_ascii_case(id)),
        RecoveryPointSelector::NewestBefore(t) => {
            newest(&mut points.iter().filter(|p| p.time <= *t))
        }
    };
    found.ok_or_else(|| RecoveryPointError::ChooseRecoveryPoint {
        wanted: selector.to_string(),
        available: describe(points),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn rp(name: &str, time: &str) -> Value {
        json!({
            "id": format!("/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v/backupInstances/bi/recoveryPoints/{name}"),
            "name": name,
            "type": "Microsoft.DataProtection/backupVaults/backupInstances/recoveryPoints",
            "properties": {
                "objectType": "AzureBackupDiscreteRecoveryPoint",
                "recoveryPointTime": time,
                "recoveryPointType": "Full",
                "recoveryPointDataStoresDetails": [{"id": "d", "type": "OperationalStore"}]
            }
        })
    }

    fn points() -> Vec<RecoveryPoint> {
        from_list(&[
            rp("rp-b", "2026-01-02T00:00:00Z"),
            rp("rp-a", "2026-01-01T00:00:00Z"),
            rp("rp-c", "2026-01-03T00:00:00Z"),
        ])
        .unwrap()
    }

    #[test]
    fn latest_id_and_newest_before_choose_the_right_point() {
        let points = points();
        assert_eq!(
            choose(&points, &RecoveryPointSelector::Latest).unwrap().id,
            "rp-c"
        );
        assert_eq!(
            choose(&points, &RecoveryPointSelector::Id("RP-A".into()))
                .unwrap()
                .id,
            "rp-a"
        );
        let before = RecoveryPointSelector::NewestBefore(datetime!(2026-01-02 12:00 UTC));
        assert_eq!(choose(&points, &before).unwrap().id, "rp-b");
        let exact = RecoveryPointSelector::NewestBefore(datetime!(2026-01-02 00:00 UTC));
        assert_eq!(choose(&points, &exact).unwrap().id, "rp-b");
        assert_eq!(points[0].data_stores, vec!["OperationalStore"]);
    }

    #[test]
    fn a_miss_says_what_exists() {
        let points = points();
        let err = choose(
            &points,
            &RecoveryPointSelector::NewestBefore(datetime!(2025-12-31 00:00 UTC)),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("3 recovery point(s)") && err.contains("rp-a") && err.contains("rp-c"),
            "{err}"
        );
        let err = choose(&[], &RecoveryPointSelector::Latest)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no recovery points yet"), "{err}");
        let err = choose(&points, &RecoveryPointSelector::Id("nope".into())).unwrap_err();
        assert!(err.to_string().contains("recovery point nope"), "{err}");
    }

    #[test]
    fn unreadable_points_are_refused_and_ages_never_negative() {
        let mut bad = rp("rp-x", "yesterday");
        assert!(
            from_list(&[bad.clone()])
                .unwrap_err()
                .to_string()
                .contains("rp-x")
        );
        bad["properties"]["recoveryPointTime"] = json!("2026-01-01T00:00:00Z");
        let p = RecoveryPoint::from_arm(&bad).unwrap();
        assert_eq!(p.age(datetime!(2025-01-01 00:00 UTC)), time::Duration::ZERO);
        assert_eq!(
            p.age(datetime!(2026-01-01 06:00 UTC)),
            time::Duration::hours(6)
        );
    }
}
