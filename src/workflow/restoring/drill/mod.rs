//! Restore drills: the timer that schedules them ([`drill_schedule`]) and the two steps only
//! drills run (planning the drill, cleaning up its scratch namespaces).

pub mod drill_cleanup;
pub mod drill_plan;
pub mod drill_schedule;
