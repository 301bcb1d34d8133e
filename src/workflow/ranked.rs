//! A step whose ARM requests take their place in a spent subscription bucket's held line at
//! a precedence (see [`crate::arm::held_line`]): the workflow ranks its steps, the client
//! orders the held requests by it.

use std::time::Duration;

use async_trait::async_trait;

use crate::arm::{Precedence, with_precedence};
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::workflow::Ctx;

/// `step`, with its ARM requests at `precedence`.
pub struct Ranked<S> {
    pub precedence: Precedence,
    pub step: S,
}

#[async_trait]
impl<S: Step<Ctx>> Step<Ctx> for Ranked<S> {
    fn name(&self) -> &'static str {
        self.step.name()
    }

    fn timeout(&self) -> Duration {
        self.step.timeout()
    }

    async fn run(&self, ctx: &Ctx, envelope: &Envelope) -> Result<Outcome, StepError> {
        with_precedence(self.precedence, self.step.run(ctx, envelope)).await
    }
}
