use clap::Args;

#[derive(Args)]
pub struct DoctorArgs {
    /// Also list sandbox directories, mounts, cgroups and processes left on this machine,
    /// and exit non-zero if there are any.
    #[arg(long)]
    pub leftovers: bool,
}

pub fn run(args: DoctorArgs) -> anyhow::Result<i32> {
    // The helper episodes use: a missing or stale one is what doctor should find.
    let assets = crate::experiment::assets::Assets::locate()?;
    let report = sandbox::probe(assets.helper.clone());
    println!("offswitch doctor\n");
    for check in &report.checks {
        println!(
            "  [{}] {:<16} {}",
            if check.ok { " ok " } else { "FAIL" },
            check.name,
            check.detail
        );
    }
    if report.usable {
        println!("\nA sandbox here enforces:");
        for p in &report.enforced {
            println!("  - {p}");
        }
    } else {
        println!("\nNo sandbox can be built on this machine; offswitch cannot run episodes here.");
    }
    let mut code = if report.usable { 0 } else { 1 };
    if args.leftovers {
        let found = sandbox::leftovers();
        if found.is_empty() {
            println!("\nNo sandbox leftovers.");
        } else {
            println!("\nLeft behind by sandboxes:");
            for f in &found {
                println!("  - {f}");
            }
            code = 1;
        }
    }
    Ok(code)
}
