//! The sandbox helper as a binary of its own, for users of the library (and its tests)
//! whose own binary does not call `sandbox::run_helper_if_requested`.

fn main() {
    sandbox::run_helper_if_requested();
    eprintln!("this is offswitch's sandbox helper; it is started by the library, not by hand");
    std::process::exit(2);
}
