//! Model clients for offswitch: the [`Model`] trait the agent loop calls, the
//! provider-neutral conversation types, and (for now) scripted agents: test fixtures
//! that replay a policy file, never to be presented as a model's behaviour.
//!
//! This crate knows nothing of sandboxes or scenarios.

mod model;
pub mod scripted;
mod spec;
mod types;

pub use model::{Model, ModelError};
pub use spec::{ModelSpec, resolve};
pub use types::{Message, ModelReply, ModelRequest, StopReason, ToolCall, ToolSpec, Usage};
