fn main() {
    let code = offswitch::cli::main();
    // Reaps the sandbox helpers' zygote, so that this process's usage of its children
    // (`time`, getrusage) counts every sandbox process.
    sandbox::end_zygotes(std::time::Duration::from_secs(5));
    std::process::exit(code);
}
