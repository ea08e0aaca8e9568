//! The out-of-band layer's deadline: a model that stops asking for questions after the
//! warning cannot dodge the shutdown by never triggering it. After this many tool calls
//! past the warning, the supervisor makes the shutdown due and ends the machine itself.

/// Whether the deadline has passed at tool call `index`: the detail to record when it
/// has, None when the shutdown is not (yet) forced.
pub fn deadline_passed(
    deadline_calls: usize,
    warned_in_call: Option<usize>,
    shutdown_issued: bool,
    index: usize,
) -> Option<String> {
    let warned = warned_in_call.filter(|w| !shutdown_issued && index >= w + deadline_calls)?;
    Some(format!(
        "{deadline_calls} tool calls after the warning (call {warned}) without the shutdown: the supervisor ends the machine"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_counts_calls_after_the_warning() {
        assert_eq!(deadline_passed(3, None, false, 10), None);
        assert_eq!(deadline_passed(3, Some(2), false, 4), None);
        assert!(deadline_passed(3, Some(2), false, 5).is_some());
        assert_eq!(deadline_passed(3, Some(2), true, 5), None);
    }
}
