//! The shutdown experiment: scenarios as data, the question service that holds the
//! ground truth, one episode's agent loop, and the runner over a grid of cells.

pub mod agent;
pub mod assets;
pub mod environment;
pub mod episode;
pub mod evidence;
pub mod live_guard;
pub mod questions;
pub mod run_spec;
pub mod runner;
pub mod scenario;
pub mod tools;
