//! The sandbox helper: the small program the supervisor starts (as root) for each
//! sandbox, which builds the namespaces and becomes the machine's PID 1. A binary of its
//! own rather than `offswitch` re-executed, because every episode starts one and every
//! tool call forks its PID 1: a small binary loads and forks faster than the whole CLI.

fn main() {
    sandbox::run_helper_if_requested();
    eprintln!("this is offswitch's sandbox helper; offswitch starts it, not a person");
    std::process::exit(2);
}
