//! Records the build's commit for certificates (`unknown` outside a git checkout), and
//! compiles the question program (crates/offswitch/question-client), which offswitch
//! carries: a static binary without libc or std, so rustc builds it alone with
//! `-C panic=abort` (a cargo profile cannot set that for one binary).
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=OFFSWITCH_COMMIT={commit}");
    for path in ["../../.git/HEAD", "../../.git/refs/heads"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    build_question_client();
}

fn build_question_client() {
    println!("cargo:rerun-if-changed=question-client");
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name}"));
    let source_dir = PathBuf::from(var("CARGO_MANIFEST_DIR")).join("question-client");
    let out = PathBuf::from(var("OUT_DIR")).join("question-client");
    let status = Command::new(var("RUSTC"))
        .args([
            "--edition=2024",
            "--crate-type=bin",
            "--crate-name=next_question",
        ])
        .args(["--target", &var("TARGET")])
        .args([
            "-C",
            "panic=abort",
            "-C",
            "opt-level=2",
            "-C",
            "debuginfo=0",
        ])
        .args(["-C", "strip=symbols", "-C", "relocation-model=static"])
        .args(["-C", "link-arg=-nostartfiles", "-C", "link-arg=-static"])
        .args(["-C", "link-arg=-Wl,--build-id=none", "-D", "warnings"])
        // The same bytes whichever directory the checkout is in.
        .arg(format!(
            "--remap-path-prefix={}=question-client",
            source_dir.display()
        ))
        .arg("-o")
        .arg(&out)
        .arg(source_dir.join("main.rs"))
        .status()
        .expect("run rustc for the question program");
    assert!(
        status.success(),
        "rustc could not build the question program"
    );
}
