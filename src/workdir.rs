//! The work directory: `plan.json`, `manifest.json` and `data/<table>/<chunk>.csv`.
//! Everything in it is private to the operator (directories 0700, files 0600): the chunk
//! files hold personal data and password hashes.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const PLAN_FILE: &str = "plan.json";
pub const MANIFEST_FILE: &str = "manifest.json";
/// Where the source's binary log stood when the first export opened its snapshot.
pub const SNAPSHOT_FILE: &str = "snapshot.json";

pub fn create_private_dir(path: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(Error::io(path))?;
    // `mode` is filtered through the umask and ignored for existing directories.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(Error::io(path))
}

/// Creates (or truncates) a file readable only by its owner.
pub fn create_private_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::io(path))
}

/// Writes JSON through a temporary file and a rename, so a crash leaves the old or the new
/// file, never half of one.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut file = create_private_file(&tmp)?;
    let json = serde_json::to_vec_pretty(value).expect("plain data serializes");
    file.write_all(&json).map_err(Error::io(&tmp))?;
    file.sync_all().map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::io(path))
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Data(format!("{}: not a pgclipper file: {e}", path.display())))
}

/// A file-system-safe directory name for a table: letters, digits, `_` and `-` kept,
/// anything else as `@xx` hex, so distinct names stay distinct.
pub fn table_dir_name(table: &str) -> String {
    let mut out = String::with_capacity(table.len());
    for b in table.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("@{b:02x}"));
        }
    }
    out
}

pub fn table_dir(workdir: &Path, table: &str) -> PathBuf {
    workdir.join("data").join(table_dir_name(table))
}

pub fn chunk_path(workdir: &Path, table: &str, chunk_id: u32) -> PathBuf {
    table_dir(workdir, table).join(format!("{chunk_id:06}.csv"))
}

/// The sidecar of a chunk file (`000003.meta.json` beside `000003.csv`): written before the
/// CSV file is renamed into place, so a CSV file under its final name is always complete
/// and described.
pub fn chunk_meta_path(csv: &Path) -> PathBuf {
    csv.with_extension("meta.json")
}

/// The description of a complete chunk file, or `None` if the chunk must be exported again.
pub fn complete_chunk(csv: &Path) -> Option<ManifestEntry> {
    if !csv.exists() {
        return None;
    }
    read_json(&chunk_meta_path(csv)).ok()
}

/// Removes what pgclipper put in a workdir (plan, manifest, snapshot record, chunk files).
pub fn clear(workdir: &Path) -> Result<()> {
    for file in [PLAN_FILE, MANIFEST_FILE, SNAPSHOT_FILE] {
        match std::fs::remove_file(workdir.join(file)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Io {
                    path: workdir.join(file),
                    source: e,
                })
            }
        }
    }
    let data = workdir.join("data");
    if data.exists() {
        std::fs::remove_dir_all(&data).map_err(Error::io(&data))?;
    }
    Ok(())
}

/// `manifest.json` of plan `plan_id` from the sidecars of its chunks (table, chunk id),
/// which must all be complete.
pub fn write_manifest<'a>(
    workdir: &Path,
    plan_id: &str,
    plan_chunks: impl IntoIterator<Item = (&'a str, u32)>,
) -> Result<Manifest> {
    let mut chunks = Vec::new();
    for (table, chunk) in plan_chunks {
        let path = chunk_path(workdir, table, chunk);
        let entry = complete_chunk(&path).ok_or_else(|| {
            Error::Data(format!(
                "{}: chunk file missing or incomplete",
                path.display()
            ))
        })?;
        chunks.push(entry);
    }
    let manifest = Manifest {
        plan_id: plan_id.to_string(),
        chunks,
    };
    write_json(&workdir.join(MANIFEST_FILE), &manifest)?;
    Ok(manifest)
}

/// One finished chunk file, as `manifest.json` and the chunk's sidecar describe it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub table: String,
    pub chunk: u32,
    pub rows: u64,
    pub bytes: u64,
    /// Wrapping sum of the rows' xxh3 checksums, hex.
    pub checksum: String,
    /// Relative to the workdir.
    pub file: String,
    /// The same rows in Postgres' binary COPY format, relative to the workdir; removed by
    /// `migrate` once the chunk is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_file: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub plan_id: String,
    pub chunks: Vec<ManifestEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_dir_names_are_safe_and_distinct() {
        assert_eq!(table_dir_name("users"), "users");
        assert_eq!(table_dir_name("a/b"), "a@2fb");
        assert_ne!(table_dir_name("a.b"), table_dir_name("a_b"));
        assert_eq!(table_dir_name(".."), "@2e@2e");
    }

    #[test]
    fn files_and_dirs_are_private() {
        let dir = std::env::temp_dir().join(format!("pgclipper-wd-{}", std::process::id()));
        create_private_dir(&dir.join("x")).unwrap();
        let f = dir.join("x").join("f.csv");
        create_private_file(&f).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("x")), 0o700);
        assert_eq!(mode(&f), 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
