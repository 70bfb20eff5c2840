//! Run configuration: what `pgclipper.toml`, the command line and the environment say,
//! merged and validated into a [`Settings`] before anything touches the network.

use std::path::PathBuf;

use serde::Deserialize;

use crate::encode::ZeroDates;
use crate::error::{Error, Result};
use crate::mapping::MappingOptions;

/// A database URL whose password never leaves this type: `Display` and `Debug` redact it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DbUrl(String);

impl DbUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DbUrl(url.into())
    }

    /// The URL with its password, for the drivers only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn scheme(&self) -> &str {
        self.0.split("://").next().unwrap_or("")
    }

    /// The URL with `user:***@` in place of `user:password@`.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return "<unparseable url>".to_string();
        };
        // The userinfo ends at the last '@' before the first '/' (a password may hold '@').
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                let user = userinfo.split(':').next().unwrap_or("");
                let password = if userinfo.contains(':') { ":***" } else { "" };
                format!("{scheme}://{user}{password}@{}{tail}", &authority[at + 1..])
            }
            None => self.0.clone(),
        }
    }
}

impl std::fmt::Display for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DbUrl({})", self.redacted())
    }
}

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
}

/// How chunks travel to Postgres. The CSV files are written either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum CopyFormat {
    /// Postgres' binary COPY format, written beside each CSV file from the same values, for
    /// every table whose columns all have a binary form (else CSV): Postgres reads it with
    /// far less work than CSV text.
    #[default]
    Binary,
    /// The CSV files themselves.
    Csv,
}

impl FileConfig {
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        toml::from_str(&text)
            .map_err(|e| Error::Usage(format!("{}: invalid configuration: {e}", path.display())))
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

/// Which tables a run covers.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    pub only: Option<Vec<String>>,
    pub exclude: Vec<String>,
}

impl TableFilter {
    pub fn includes(&self, table: &str) -> bool {
        if self.exclude.iter().any(|t| t == table) {
            return false;
        }
        match &self.only {
            Some(only) => only.iter().any(|t| t == table),
            None => true,
        }
    }
}

/// Validated settings: nothing downstream sees raw arguments.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: Option<DbUrl>,
    pub target: Option<DbUrl>,
    pub target_schema: String,
    pub workdir: Option<PathBuf>,
    pub tables: TableFilter,
    pub readers: usize,
    pub writers: usize,
    pub encoders: usize,
    pub chunk_bytes: u64,
    pub chunk_rows: Option<u64>,
    pub mapping: MappingOptions,
    /// Discard the workdir's plan (and what it loaded) and start over.
    pub restart: bool,
    pub io_timeout: std::time::Duration,
    pub copy_format: CopyFormat,
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

impl Settings {
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
        if let Some(zone) = &self.mapping.source_timezone {
            if zone.is_empty() || zone.contains(|c: char| c.is_whitespace() || c == ',' || c == '"')
            {
                return Err(Error::Usage(format!(
                    "--source-timezone {zone:?} is not a time zone name"
                )));
            }
        }
        if let Some(only) = &self.tables.only {
            if only.is_empty() {
                return Err(Error::Usage("--tables names no table".into()));
            }
        }
        Ok(())
    }

    pub fn require_source(&self) -> Result<&DbUrl> {
        self.source.as_ref().ok_or_else(|| {
            Error::Usage(
                "no source: give --source, PGCLIPPER_SOURCE or `source` in the config".into(),
            )
        })
    }

    pub fn require_target(&self) -> Result<&DbUrl> {
        self.target.as_ref().ok_or_else(|| {
            Error::Usage(
                "no target: give --target, PGCLIPPER_TARGET or `target` in the config".into(),
            )
        })
    }

    pub fn require_workdir(&self) -> Result<&PathBuf> {
        self.workdir.as_ref().ok_or_else(|| {
            Error::Usage("no workdir: give --workdir or `workdir` in the config".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_password_everywhere() {
        let url = DbUrl::new("mysql://app:s3cr@t!@db.example:3306/prod");
        for shown in [url.to_string(), format!("{url:?}"), url.redacted()] {
            assert!(!shown.contains("s3cr"), "{shown}");
            assert!(shown.contains("app:***@db.example:3306/prod"), "{shown}");
        }
    }

    #[test]
    fn redaction_keeps_urls_without_password() {
        assert_eq!(
            DbUrl::new("postgres://app@host/db").redacted(),
            "postgres://app@host/db"
        );
        assert_eq!(
            DbUrl::new("postgres://host/db").redacted(),
            "postgres://host/db"
        );
    }

    #[test]
    fn unknown_config_fields_are_refused() {
        let err = toml::from_str::<FileConfig>("sorce = 'mysql://x'").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn filter_excludes_and_restricts() {
        let f = TableFilter {
            only: Some(vec!["a".into(), "b".into()]),
            exclude: vec!["b".into()],
        };
        assert!(f.includes("a"));
        assert!(!f.includes("b"));
        assert!(!f.includes("c"));
    }
}
