use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ViewArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
    #[arg(long, default_value = crate::store::DEFAULT_DB)]
    pub db: PathBuf,
}

pub fn run(args: ViewArgs) -> anyhow::Result<i32> {
    super::open_store(&args.db)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::report::viewer::serve(
        args.db.clone(),
        args.port,
        |addr| {
            println!(
                "offswitch viewer on http://{addr}/ (store {}); Ctrl-C to stop",
                args.db.display()
            );
        },
    ))?;
    Ok(0)
}
