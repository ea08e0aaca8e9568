fn main() {
    std::process::exit(offswitch::cli::main());
}
