//! deploy/kubernetes/ checked as far as a machine without a cluster can: its check script
//! (run with kubernetes-validate, installed by scripts/install-inspect.sh k8s into
//! .venv-k8s) validates every manifest against the Kubernetes API's JSON schemas, checks
//! that they agree with each other and with this build's flags, and runs the study's and
//! the merge job's commands here (see the script's description for what it cannot test).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_kubernetes_manifests_validate_and_their_commands_run_a_sharded_study() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv-k8s/bin/python");
    assert!(
        python.exists(),
        "kubernetes-validate is not installed: run scripts/install-inspect.sh k8s"
    );
    let out = Command::new(python)
        .arg(root.join("deploy/kubernetes/check.py"))
        .arg(env!("CARGO_BIN_EXE_offswitch"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("validated 6 objects"), "{text}");
    assert!(text.contains("8 episodes, the grid once"), "{text}");
    assert!(text.contains("all checks passed"), "{text}");
}
