//! Files and directories as artifacts: what `put` reads and `get -o` writes. A directory is
//! one part per file (relative paths as part names), marked so `get` restores it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use pipecache::{Artifact, Part};

/// Metadata entry marking an artifact that was put from a directory.
const LAYOUT_META: &str = "pipecache.layout";

/// Reads the `put` input into an artifact.
pub fn read_input(path: &Path, kind: &str, meta: &[(String, String)]) -> Result<Artifact> {
    let mut artifact = Artifact {
        kind: kind.to_owned(),
        meta: meta.iter().cloned().collect::<BTreeMap<_, _>>(),
        ..Default::default()
    };
    if path == Path::new("-") {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .context("read stdin")?;
        artifact.parts.push(Part::new("data", data));
        return Ok(artifact);
    }
    let md = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if md.is_dir() {
        let mut files = Vec::new();
        collect_files(path, path, &mut files)?;
        files.sort();
        for rel in files {
            let full = path.join(&rel);
            let data =
                std::fs::read(&full).with_context(|| format!("cannot read {}", full.display()))?;
            artifact.parts.push(Part::new(rel, data));
        }
        artifact.meta.insert(LAYOUT_META.into(), "dir".into());
    } else if md.is_file() {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("data")
            .to_owned();
        artifact.parts.push(Part::new(name, data));
    } else {
        bail!("{} is neither a file nor a directory", path.display());
    }
    Ok(artifact)
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read directory {}", dir.display()))?;
        let path = entry.path();
        let ft = entry
            .file_type()
            .with_context(|| format!("cannot stat {}", path.display()))?;
        if ft.is_dir() {
            collect_files(root, &path, out)?;
        } else if ft.is_file() {
            let rel = path.strip_prefix(root).expect("under root");
            let rel = rel
                .to_str()
                .with_context(|| format!("file name {} is not UTF-8", path.display()))?;
            out.push(rel.replace(std::path::MAIN_SEPARATOR, "/"));
        } else {
            bail!(
                "{} is not a regular file (symlinks and devices are not stored)",
                path.display()
            );
        }
    }
    Ok(())
}

/// A part name as a safe relative path (names come from the store and may have been written by
/// any library user, so `..` and absolute paths are refused).
fn safe_relative(name: &str) -> Result<PathBuf> {
    let p = Path::new(name);
    if name.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        bail!("part name {name:?} is not a safe relative path; refusing to write it");
    }
    Ok(p.to_owned())
}

pub fn write_output(key: &str, artifact: &Artifact, output: Option<&Path>) -> Result<()> {
    let is_dir =
        artifact.meta.get(LAYOUT_META).is_some_and(|v| v == "dir") || artifact.parts.len() != 1;
    match (is_dir, output) {
        (false, None) => {
            let mut out = std::io::stdout().lock();
            out.write_all(&artifact.parts[0].data)
                .context("write stdout")?;
            out.flush().context("write stdout")?;
        }
        (false, Some(path)) => {
            std::fs::write(path, &artifact.parts[0].data)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        (true, None) => bail!(
            "{key} is a directory artifact with {} parts; pass -o DIR to write it",
            artifact.parts.len()
        ),
        (true, Some(dir)) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for part in &artifact.parts {
                let target = dir.join(safe_relative(&part.name)?);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                std::fs::write(&target, &part.data)
                    .with_context(|| format!("cannot write {}", target.display()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_part_names_are_refused() {
        assert!(safe_relative("a/b.jpg").is_ok());
        for bad in ["../x", "/etc/passwd", "a/../../b", ""] {
            assert!(safe_relative(bad).is_err(), "{bad:?}");
        }
    }
}
