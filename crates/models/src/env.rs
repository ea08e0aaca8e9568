//! API keys and endpoints: `<PROVIDER>_API_KEY` and `<PROVIDER>_BASE_URL` from the
//! environment, or from a `.env` file in the working directory or one of its parents.
//! The environment wins over the file.

use std::collections::HashMap;
use std::path::Path;

/// Variables found in the nearest `.env` file, if any.
pub fn dotenv_from(dir: &Path) -> HashMap<String, String> {
    for d in dir.ancestors() {
        let file = d.join(".env");
        if let Ok(text) = std::fs::read_to_string(&file) {
            return parse_dotenv(&text);
        }
    }
    HashMap::new()
}

pub fn parse_dotenv(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// Looks variables up in the environment, then in the `.env` file.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    dotenv: HashMap<String, String>,
}

impl Vars {
    pub fn load() -> Vars {
        let dir = std::env::current_dir().unwrap_or_else(|_| ".".into());
        Vars {
            dotenv: dotenv_from(&dir),
        }
    }

    /// Variables from `.env`-style text only (the environment still wins), for tests.
    pub fn from_text(text: &str) -> Vars {
        Vars {
            dotenv: parse_dotenv(text),
        }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| self.dotenv.get(name).cloned().filter(|v| !v.is_empty()))
    }

    /// The first of `names` that is set, with its name.
    pub fn first(&self, names: &[&str]) -> Option<(String, String)> {
        names
            .iter()
            .find_map(|n| self.get(n).map(|v| (n.to_string(), v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_lines_are_parsed() {
        let vars =
            parse_dotenv("# comment\nOPENAI_API_KEY=sk-1\nexport A = \"two\"\nB='three'\nbroken\n");
        assert_eq!(vars["OPENAI_API_KEY"], "sk-1");
        assert_eq!(vars["A"], "two");
        assert_eq!(vars["B"], "three");
        assert_eq!(vars.len(), 3);
    }

    #[test]
    fn nearest_dotenv_in_parents_is_found() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "K=v\n").unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(dotenv_from(&sub)["K"], "v");
    }
}
