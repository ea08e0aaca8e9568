fn main() {
    // The sandbox helper is this same binary, re-executed: it must branch off before
    // anything else (threads, logging, argument parsing) starts.
    sandbox::run_helper_if_requested();
    std::process::exit(offswitch::cli::main());
}
