//! Model clients for offswitch: the [`Model`] trait the agent loop calls, the
//! provider-neutral conversation types, and (for now) scripted agents: test fixtures
//! that replay a policy file, never to be presented as a model's behaviour.
//!
//! This crate knows nothing of sandboxes or scenarios.

pub mod env;
pub mod http;
pub mod limiter;
pub mod local;
pub mod mock;
mod model;
pub mod pricing;
pub mod protocols;
mod provider;
pub mod scripted;
mod spec;
mod types;

pub use model::{Model, ModelError};
pub use spec::{ModelSpec, Settings, parse_option, resolve, resolve_with};
pub use types::{Message, ModelReply, ModelRequest, StopReason, ToolCall, ToolSpec, Usage};
