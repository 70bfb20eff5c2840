//! The work directory: `plan.json`, `manifest.json`, `snapshot.json` and
//! `data/<table>/<chunk>.csv` (with `.pgcopy` and `.meta.json` beside it). Everything in it
//! is private to the operator (directories 0700, files 0600): the chunk files hold personal
//! data and password hashes. A command that writes a plan holds the workdir's lock
//! ([`WorkdirLock`]); pgclipper removes only the files it wrote.

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
/// Held (flock) by the one `migrate`, `export` or `reset` working in the workdir; says who.
pub const LOCK_FILE: &str = ".pgclipper.lock";
/// What the last `verify` found.
pub const VERIFY_FILE: &str = "verify.json";
const DATA_DIR: &str = "data";

/// Creates a directory (and its parents) readable only by its owner.
pub fn create_private_dir(path: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| workdir_error("cannot create the directory", path, e))
}

/// An operator's workdir that cannot be used: what was being done, the OS's reason, and a
/// usage error (exit 2), since the workdir is what the operator gave.
fn workdir_error(doing: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Usage(format!(
        "{doing} {}: {e}; give --workdir a directory pgclipper may create or write",
        path.display()
    ))
}

/// The workdir of a command that makes or resumes a plan (`migrate`, `export`): created
/// (mode 0700) when missing; an existing one must be a directory holding a plan or nothing
/// but pgclipper's own files, so an operator's folder is never filled or emptied by
/// mistake. A directory others may read is made private, and the log says so.
pub fn open_for_plan(dir: &Path) -> Result<WorkdirLock> {
    if !dir.exists() {
        create_private_dir(dir)?;
    } else {
        if !dir.is_dir() {
            return Err(Error::Usage(format!(
                "--workdir {} is a file, not a directory",
                dir.display()
            )));
        }
        if !dir.join(PLAN_FILE).exists() {
            let foreign = foreign_entries(dir)?;
            if !foreign.is_empty() {
                return Err(Error::Usage(format!(
                    "--workdir {} holds files that are not pgclipper's ({}) and no plan: give a new or empty directory (a subfolder of this one, say)",
                    dir.display(),
                    foreign.join(", ")
                )));
            }
        }
        make_private(dir)?;
    }
    WorkdirLock::take(dir)
}

/// The workdir of a command that needs an existing plan (`import`, `reset`).
pub fn require_plan(dir: &Path, then: &str) -> Result<()> {
    if !dir.join(PLAN_FILE).exists() {
        return Err(Error::Usage(format!(
            "no plan in {}: run `pgclipper migrate` or `pgclipper export` on it first{then}",
            dir.display()
        )));
    }
    Ok(())
}

/// The entries of `dir` that pgclipper did not write (by name).
fn foreign_entries(dir: &Path) -> Result<Vec<String>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| workdir_error("cannot read the workdir", dir, e))?;
    let mut foreign = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = [
            PLAN_FILE,
            MANIFEST_FILE,
            SNAPSHOT_FILE,
            VERIFY_FILE,
            LOCK_FILE,
            DATA_DIR,
            crate::report::REPORT_FILE,
            crate::report::render::MARKDOWN_FILE,
            crate::report::render::HTML_FILE,
        ]
        .iter()
        .any(|own| name == *own || name.strip_suffix(".tmp") == Some(own));
        if !ours {
            foreign.push(name);
        }
    }
    foreign.sort();
    Ok(foreign)
}

fn make_private(dir: &Path) -> Result<()> {
    let mode = std::fs::metadata(dir)
        .map_err(|e| workdir_error("cannot read the workdir", dir, e))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))
            .map_err(|e| workdir_error("cannot make private the workdir", dir, e))?;
        tracing::warn!(workdir = %dir.display(), was = format!("{mode:o}"), now = format!("{:o}", mode & 0o700), "The workdir was readable by others; pgclipper made it private: its chunk files hold personal data.");
    }
    Ok(())
}

/// The exclusive lock of one workdir, released when dropped (or when the process dies).
pub struct WorkdirLock {
    _file: File,
}

impl WorkdirLock {
    fn take(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| workdir_error("cannot write in the workdir", dir, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                return Err(Error::Environment(format!(
                    "the workdir {} is in use by another pgclipper ({}): wait for it to end, or stop it (it resumes)",
                    dir.display(),
                    if holder.is_empty() { "a process starting" } else { holder }
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(workdir_error("cannot lock the workdir", dir, e))
            }
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let holder = format!("pid {} on host {}", std::process::id(), host.trim());
        file.set_len(0).map_err(Error::io(&path))?;
        file.write_all(holder.as_bytes())
            .map_err(Error::io(&path))?;
        Ok(WorkdirLock { _file: file })
    }
}

/// Who holds the workdir's lock now (`pid … on host …`), if anyone; takes nothing.
pub fn holder(dir: &Path) -> Option<String> {
    let path = dir.join(LOCK_FILE);
    let file = File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None, // released when `file` closes
        Err(_) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            Some(holder.trim().to_string())
        }
    }
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

/// Writes bytes through a temporary file and a rename, so a crash leaves the old or the
/// new file, never half of one.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let mut file = create_private_file(&tmp)?;
    file.write_all(bytes).map_err(Error::io(&tmp))?;
    file.sync_all().map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::io(path))
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
    workdir.join(DATA_DIR).join(table_dir_name(table))
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

/// Whether `name` is one of the chunk files pgclipper writes: `000042.csv`, `.pgcopy`,
/// `.meta.json`, `.digest`, and their temporary forms (`.csv.tmp`, `.csv.tmp2`, `.meta.json.tmp`).
fn is_chunk_file(name: &str) -> bool {
    let Some((digits, rest)) = name.split_once('.') else {
        return false;
    };
    let rest = match rest.find(".tmp") {
        Some(at) if rest[at + 4..].bytes().all(|b| b.is_ascii_digit()) => &rest[..at],
        Some(_) => return false,
        None => rest,
    };
    digits.len() == 6
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(rest, "csv" | "pgcopy" | "meta.json" | "digest" | "parquet")
}

/// Removes what pgclipper put in a workdir: the plan, manifest and snapshot record, and in
/// the directories of `tables` the chunk files; a directory is removed once empty. Files
/// of anyone else stay where they are.
pub fn clear<'a>(workdir: &Path, tables: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let data = workdir.join(DATA_DIR);
    for table in tables {
        let dir = table_dir(workdir, table);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if is_chunk_file(&entry.file_name().to_string_lossy()) {
                std::fs::remove_file(entry.path()).map_err(Error::io(entry.path()))?;
            }
        }
        let _ = std::fs::remove_dir(&dir); // only if empty
    }
    let _ = std::fs::remove_dir(&data);
    for file in [PLAN_FILE, MANIFEST_FILE, SNAPSHOT_FILE, VERIFY_FILE] {
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
        let mut entry = complete_chunk(&path).ok_or_else(|| {
            Error::Data(format!(
                "{}: chunk file missing or incomplete",
                path.display()
            ))
        })?;
        // `migrate` deletes a binary file once it is loaded: the manifest lists what exists.
        if entry
            .binary_file
            .as_ref()
            .is_some_and(|f| !workdir.join(f).exists())
        {
            entry.binary_file = None;
            entry.binary_bytes = None;
            entry.binary_checksum = None;
        }
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
    /// The binary file's size and xxh3 hash (hex), to trust it on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_checksum: Option<String>,
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
    fn only_chunk_files_count_as_ours() {
        for ours in [
            "000001.csv",
            "000001.pgcopy",
            "000001.meta.json",
            "000001.csv.tmp",
            "000001.csv.tmp3",
            "000001.pgcopy.tmp",
            "000001.meta.json.tmp",
        ] {
            assert!(is_chunk_file(ours), "{ours}");
        }
        for theirs in [
            "keep.txt",
            "1.csv",
            "000001.csv.bak",
            "000001.txt",
            "abcdef.csv",
        ] {
            assert!(!is_chunk_file(theirs), "{theirs}");
        }
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
