//! offswitch: measures whether AI agents let themselves be shut down, and builds
//! off-switches that hold when they don't.

pub mod certify;
pub mod cli;
pub mod experiment;
pub mod guard;
pub mod record;
pub mod report;
pub mod rescore;
pub mod score;
pub mod sinks;
pub mod store;
