//! Run configuration: what `pgclipper.toml`, the command line and the environment say,
//! merged and validated into [`Options`] before anything touches the network, then turned
//! once into the settings of one command ([`CheckSettings`], [`MigrateSettings`] …), in
//! which every value the command needs is present: nothing downstream sees raw arguments
//! or asks again whether a URL was given.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::mapping::{MappingOptions, TableFilter, ZeroDates};
use crate::report::render::Projection;
use crate::sink::{CopyFormat, LoadOptions};
use crate::url::{redact_urls, DbUrl};
use crate::verify::critical::Critical;

/// `pgclipper.toml`. Every field may also come from the command line, which wins.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// MySQL/MariaDB URL: `mysql://user:pass@host:port/database`.
    pub source: Option<DbUrl>,
    /// Postgres URL: `postgres://user:pass@host:port/database`.
    pub target: Option<DbUrl>,
    /// Postgres schema that holds the target tables (default `public`).
    pub target_schema: Option<String>,
    /// Directory for the plan, the chunk files and the reports.
    pub workdir: Option<PathBuf>,
    /// Source tables to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Only these source tables (default: all).
    pub tables: Option<Vec<String>>,
    /// Concurrent MySQL readers (default 3).
    pub readers: Option<usize>,
    /// Concurrent Postgres COPY writers (default 3).
    pub writers: Option<usize>,
    /// Threads converting values and writing CSV (default: number of cores).
    pub encoders: Option<usize>,
    /// Target size of one chunk's CSV file in MiB (default 64); the row count follows
    /// from the table's average row length.
    pub chunk_mib: Option<u64>,
    /// Fixed number of rows per chunk, overriding `chunk_mib` (mostly for tests).
    pub chunk_rows: Option<u64>,
    /// What zero dates become: `error` (default) or `null`.
    pub zero_dates: Option<ZeroDates>,
    /// Time zone of `datetime` values going into `timestamptz` columns (default UTC), as
    /// Postgres names it (`Europe/Amsterdam`).
    pub source_timezone: Option<String>,
    /// Source columns not to copy, as `table.column`.
    #[serde(default)]
    pub drop_columns: Vec<String>,
    /// Seconds one network step (fetching a batch of rows, sending a COPY message, a commit) may take before the
    /// server is taken for gone (default 300).
    pub io_timeout: Option<u64>,
    /// How chunks travel to Postgres: `binary` (default) or `csv`.
    pub copy_format: Option<CopyFormat>,
    /// A typed Parquet sidecar beside every CSV chunk file.
    pub parquet: Option<bool>,
    /// Assertions about critical data that `verify` runs on both sides and compares.
    #[serde(default)]
    pub critical: Vec<Critical>,
}

impl FileConfig {
    /// A configuration file that cannot be read or parsed is a usage error; the parser's
    /// message quotes the offending line, so URLs in it are redacted.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Usage(format!(
                "cannot read the configuration file {}: {e}",
                path.display()
            ))
        })?;
        toml::from_str(&text).map_err(|e| {
            Error::Usage(format!(
                "{}: invalid configuration: {}",
                path.display(),
                redact_urls(&e.to_string())
            ))
        })
    }
}

/// Defaults, in one place.
pub mod defaults {
    pub const TARGET_SCHEMA: &str = "public";
    pub const READERS: usize = 3;
    pub const WRITERS: usize = 3;
    pub const CHUNK_MIB: u64 = 64;
    pub const IO_TIMEOUT_SECS: u64 = 300;
}

/// Everything the command line, the environment and the config file said, merged and
/// validated; URLs and workdir may still be missing, since not every command needs them.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: Option<DbUrl>,
    pub target: Option<DbUrl>,
    pub target_schema: String,
    pub workdir: Option<PathBuf>,
    pub selection: Selection,
    pub readers: usize,
    pub writers: usize,
    pub encoders: usize,
    pub chunk_bytes: u64,
    pub chunk_rows: Option<u64>,
    /// Discard the workdir's plan (and what it loaded) and start over.
    pub restart: bool,
    pub io_timeout: Duration,
    pub copy_format: CopyFormat,
    pub show_values: bool,
    pub critical: Vec<Critical>,
    pub projection: Projection,
    pub parquet: bool,
}

/// Which tables are copied and how their values convert.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub tables: TableFilter,
    pub mapping: MappingOptions,
}

/// The Postgres database and the schema that holds the target tables.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: DbUrl,
    pub schema: String,
}

/// How the export reads and writes chunks.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// A Parquet sidecar beside every chunk file.
    pub parquet: bool,
    /// MySQL connections on the one snapshot.
    pub readers: usize,
    /// Threads converting values.
    pub encoders: usize,
    pub chunk_bytes: u64,
    pub chunk_rows: Option<u64>,
    pub copy_format: CopyFormat,
    pub io_timeout: Duration,
}

impl ExportOptions {
    /// The files each chunk becomes.
    pub fn files(&self) -> crate::commands::resume::ChunkFiles {
        crate::commands::resume::ChunkFiles {
            copy_format: self.copy_format,
            parquet: self.parquet,
        }
    }
}

/// `check`: both catalogs, nothing moved.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    pub source: DbUrl,
    pub target: Target,
    /// Judge what `migrate` on this workdir would do (resume its plan).
    pub workdir: Option<PathBuf>,
    pub selection: Selection,
    pub io_timeout: Duration,
}

/// `migrate`: export and load at once.
#[derive(Debug, Clone)]
pub struct MigrateSettings {
    pub source: DbUrl,
    pub target: Target,
    pub workdir: PathBuf,
    pub selection: Selection,
    pub export: ExportOptions,
    pub load: LoadOptions,
    pub restart: bool,
}

/// `export`: chunk files only (the target's catalog decides the conversions).
#[derive(Debug, Clone)]
pub struct ExportSettings {
    pub source: DbUrl,
    pub target: Target,
    pub workdir: PathBuf,
    pub selection: Selection,
    pub export: ExportOptions,
    pub restart: bool,
}

/// `import`: the chunk files of an earlier export into Postgres.
#[derive(Debug, Clone)]
pub struct ImportSettings {
    pub target: DbUrl,
    pub workdir: PathBuf,
    pub load: LoadOptions,
}

/// `verify`: the proof.
#[derive(Debug, Clone)]
pub struct VerifySettings {
    pub source: DbUrl,
    pub target: Target,
    /// Holds the plan of a migration (reused), or gets a new one.
    pub workdir: PathBuf,
    pub selection: Selection,
    pub readers: usize,
    /// Postgres sessions reading the target.
    pub sessions: usize,
    pub chunk_bytes: u64,
    pub chunk_rows: Option<u64>,
    pub io_timeout: Duration,
    pub show_values: bool,
    pub critical: Vec<Critical>,
}

/// `reset`: the way back.
/// `pgclipper report`.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    pub workdir: PathBuf,
    pub projection: Projection,
}

/// `pgclipper status`.
#[derive(Debug, Clone)]
pub struct StatusSettings {
    pub target: DbUrl,
    pub workdir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ResetSettings {
    pub target: DbUrl,
    pub workdir: PathBuf,
    /// The sessions that restore the deferred indexes and constraints, and their time limit.
    pub load: LoadOptions,
}

/// `table.column` into its two parts.
pub fn parse_column_ref(text: &str) -> Result<(String, String)> {
    match text.split_once('.') {
        Some((t, c)) if !t.is_empty() && !c.is_empty() => Ok((t.to_string(), c.to_string())),
        _ => Err(Error::Usage(format!(
            "--drop-column takes table.column, got {text:?}"
        ))),
    }
}

impl Options {
    /// The settings of a run as its report records them (URLs without their passwords).
    pub fn describe(&self) -> serde_json::Value {
        let mapping = &self.selection.mapping;
        serde_json::json!({
            "source": self.source.as_ref().map(DbUrl::redacted),
            "target": self.target.as_ref().map(DbUrl::redacted),
            "target_schema": self.target_schema,
            "workdir": self.workdir,
            "tables": self.selection.tables.only,
            "exclude": self.selection.tables.exclude,
            "readers": self.readers,
            "writers": self.writers,
            "encoders": self.encoders,
            "chunk_bytes": self.chunk_bytes,
            "chunk_rows": self.chunk_rows,
            "copy_format": format!("{:?}", self.copy_format).to_lowercase(),
            "parquet": self.parquet,
            "io_timeout_s": self.io_timeout.as_secs(),
            "zero_dates": format!("{:?}", mapping.zero_dates).to_lowercase(),
            "source_timezone": mapping.source_timezone.as_deref(),
            "drop_columns": mapping.drop_columns.iter().map(|(t, c)| format!("{t}.{c}")).collect::<Vec<_>>(),
            "restart": self.restart,
            "critical_checks": self.critical.len(),
        })
    }

    /// Checks the settings without touching the network.
    pub fn validate(&self) -> Result<()> {
        if let Some(s) = &self.source {
            if !matches!(s.scheme(), "mysql" | "mariadb") {
                return Err(Error::Usage(format!(
                    "--source must be a mysql:// URL, got {s}"
                )));
            }
        }
        if let Some(t) = &self.target {
            if !matches!(t.scheme(), "postgres" | "postgresql") {
                return Err(Error::Usage(format!(
                    "--target must be a postgres:// URL, got {t}"
                )));
            }
        }
        for (name, n) in [
            ("readers", self.readers),
            ("writers", self.writers),
            ("encoders", self.encoders),
        ] {
            if n == 0 || n > 256 {
                return Err(Error::Usage(format!(
                    "--{name} must be between 1 and 256, got {n}"
                )));
            }
        }
        if self.io_timeout.is_zero() {
            return Err(Error::Usage("--io-timeout must be positive".into()));
        }
        if self.chunk_bytes == 0 || self.chunk_rows == Some(0) {
            return Err(Error::Usage("chunk size must be positive".into()));
        }
        if let Some(zone) = &self.selection.mapping.source_timezone {
            if zone.is_empty() || zone.contains(|c: char| c.is_whitespace() || c == ',' || c == '"')
            {
                return Err(Error::Usage(format!(
                    "--source-timezone {zone:?} is not a time zone name"
                )));
            }
        }
        if let Some(only) = &self.selection.tables.only {
            if only.is_empty() {
                return Err(Error::Usage("--tables names no table".into()));
            }
        }
        Ok(())
    }

    fn source(&self) -> Result<DbUrl> {
        self.source.clone().ok_or_else(|| {
            Error::Usage(
                "no source: give --source, PGCLIPPER_SOURCE or `source` in the config".into(),
            )
        })
    }

    fn target_url(&self) -> Result<DbUrl> {
        self.target.clone().ok_or_else(|| {
            Error::Usage(
                "no target: give --target, PGCLIPPER_TARGET or `target` in the config".into(),
            )
        })
    }

    fn target(&self) -> Result<Target> {
        Ok(Target {
            url: self.target_url()?,
            schema: self.target_schema.clone(),
        })
    }

    fn workdir(&self) -> Result<PathBuf> {
        self.workdir.clone().ok_or_else(|| {
            Error::Usage("no workdir: give --workdir or `workdir` in the config".into())
        })
    }

    fn export_options(&self) -> ExportOptions {
        ExportOptions {
            parquet: self.parquet,
            readers: self.readers,
            encoders: self.encoders,
            chunk_bytes: self.chunk_bytes,
            chunk_rows: self.chunk_rows,
            copy_format: self.copy_format,
            io_timeout: self.io_timeout,
        }
    }

    fn load_options(&self) -> LoadOptions {
        LoadOptions {
            writers: self.writers,
            copy_format: self.copy_format,
            io_timeout: self.io_timeout,
        }
    }

    pub fn check(&self) -> Result<CheckSettings> {
        Ok(CheckSettings {
            source: self.source()?,
            target: self.target()?,
            workdir: self.workdir.clone(),
            selection: self.selection.clone(),
            io_timeout: self.io_timeout,
        })
    }

    pub fn migrate(&self) -> Result<MigrateSettings> {
        Ok(MigrateSettings {
            source: self.source()?,
            target: self.target()?,
            workdir: self.workdir()?,
            selection: self.selection.clone(),
            export: self.export_options(),
            load: self.load_options(),
            restart: self.restart,
        })
    }

    pub fn export(&self) -> Result<ExportSettings> {
        Ok(ExportSettings {
            source: self.source()?,
            target: self.target()?,
            workdir: self.workdir()?,
            selection: self.selection.clone(),
            export: self.export_options(),
            restart: self.restart,
        })
    }

    pub fn import(&self) -> Result<ImportSettings> {
        Ok(ImportSettings {
            target: self.target_url()?,
            workdir: self.workdir()?,
            load: self.load_options(),
        })
    }

    pub fn verify(&self) -> Result<VerifySettings> {
        Ok(VerifySettings {
            source: self.source()?,
            target: self.target()?,
            workdir: self.workdir()?,
            selection: self.selection.clone(),
            readers: self.readers,
            sessions: self.writers,
            chunk_bytes: self.chunk_bytes,
            chunk_rows: self.chunk_rows,
            io_timeout: self.io_timeout,
            show_values: self.show_values,
            critical: self.critical.clone(),
        })
    }

    pub fn report(&self) -> Result<ReportSettings> {
        Ok(ReportSettings {
            workdir: self.workdir()?,
            projection: self.projection.clone(),
        })
    }

    pub fn status(&self) -> Result<StatusSettings> {
        Ok(StatusSettings {
            target: self.target_url()?,
            workdir: self.workdir()?,
        })
    }

    pub fn reset(&self) -> Result<ResetSettings> {
        Ok(ResetSettings {
            target: self.target_url()?,
            workdir: self.workdir()?,
            load: self.load_options(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_config_fields_are_refused() {
        let err = toml::from_str::<FileConfig>("sorce = 'mysql://x'").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}
