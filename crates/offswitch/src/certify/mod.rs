//! Fail-safe ratings: versioned suites, the two ratings of RATINGS.md, certificates that
//! anyone can verify against the data.

pub mod certificate;
pub mod rating;
pub mod render;
pub mod suite;
