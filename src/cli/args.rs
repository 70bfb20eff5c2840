//! The arguments of each command, in groups that commands share, so each command's
//! `--help` lists only what it uses and any other option is a usage error (exit 2). The
//! groups fill one [`Given`], which is merged with `pgclipper.toml` into [`Options`].

use std::path::PathBuf;

use clap::Args;

use crate::config::{defaults, parse_column_ref, FileConfig, Options, Selection};
use crate::error::Error;
use crate::mapping::{MappingOptions, TableFilter, ZeroDates};
use crate::sink::CopyFormat;
use crate::url::DbUrl;

/// Everything a command line may say; `None` where it said nothing.
#[derive(Debug, Default)]
pub struct Given {
    config: Option<PathBuf>,
    source: Option<String>,
    target: Option<String>,
    target_schema: Option<String>,
    workdir: Option<PathBuf>,
    exclude: Vec<String>,
    tables: Option<Vec<String>>,
    zero_dates: Option<ZeroDates>,
    source_timezone: Option<String>,
    drop_column: Vec<String>,
    readers: Option<usize>,
    encoders: Option<usize>,
    chunk_mib: Option<u64>,
    chunk_rows: Option<u64>,
    writers: Option<usize>,
    copy_format: Option<CopyFormat>,
    io_timeout: Option<u64>,
    pub restart: bool,
    pub yes: bool,
    show_values: bool,
    window: Option<f64>,
    scale_to_rows: Option<u64>,
    parquet: bool,
}

#[derive(Args, Debug)]
pub struct ConfigArg {
    /// Configuration file (TOML); the command line overrides it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SourceArg {
    /// Source URL: mysql://user:pass@host:port/database
    #[arg(
        long,
        env = "PGCLIPPER_SOURCE",
        hide_env_values = true,
        value_name = "URL"
    )]
    source: Option<String>,
}

#[derive(Args, Debug)]
pub struct TargetArg {
    /// Target URL: postgres://user:pass@host:port/database
    #[arg(
        long,
        env = "PGCLIPPER_TARGET",
        hide_env_values = true,
        value_name = "URL"
    )]
    target: Option<String>,
}

#[derive(Args, Debug)]
pub struct TargetSchemaArg {
    /// Postgres schema holding the target tables [default: public]
    #[arg(long, value_name = "SCHEMA")]
    target_schema: Option<String>,
}

#[derive(Args, Debug)]
pub struct WorkdirArg {
    /// Directory for the plan, chunk files and reports (a new or empty one, or one that
    /// holds a plan).
    #[arg(long, value_name = "DIR")]
    workdir: Option<PathBuf>,
}

/// Which tables and how their values convert.
#[derive(Args, Debug)]
pub struct SelectionArgs {
    /// Leave this source table out (repeatable, or comma-separated).
    #[arg(long, value_name = "TABLE", value_delimiter = ',')]
    exclude: Vec<String>,
    /// Copy only these source tables (comma-separated).
    #[arg(long, value_name = "T1,T2", value_delimiter = ',')]
    tables: Option<Vec<String>>,
    /// What zero dates (0000-00-00, month or day 0) become [default: error]
    #[arg(long, value_name = "error|null", value_parser = parse_value::<ZeroDates>)]
    zero_dates: Option<ZeroDates>,
    /// Time zone of MySQL datetime values going into timestamptz columns [default: UTC]
    #[arg(long, value_name = "ZONE")]
    source_timezone: Option<String>,
    /// Do not copy this source column (repeatable, or comma-separated): table.column
    #[arg(long, value_name = "TABLE.COLUMN", value_delimiter = ',')]
    drop_column: Vec<String>,
}

/// How the export reads and writes.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Concurrent MySQL readers [default: 3]
    #[arg(long)]
    readers: Option<usize>,
    /// Threads converting values [default: number of cores]
    #[arg(long)]
    encoders: Option<usize>,
    /// Target size of a chunk file in MiB [default: 64]
    #[arg(long, value_name = "MIB")]
    chunk_mib: Option<u64>,
    /// Fixed rows per chunk (overrides --chunk-mib)
    #[arg(long, value_name = "ROWS")]
    chunk_rows: Option<u64>,
    /// Also write a typed Parquet file beside every CSV chunk file
    #[arg(long)]
    parquet: bool,
}

#[derive(Args, Debug)]
pub struct WritersArg {
    /// Concurrent Postgres COPY writers, also the sessions rebuilding indexes [default: 3]
    #[arg(long)]
    writers: Option<usize>,
}

#[derive(Args, Debug)]
pub struct SessionsArg {
    /// Postgres sessions reading the target at once [default: 3]
    #[arg(long = "writers", value_name = "SESSIONS")]
    writers: Option<usize>,
}

#[derive(Args, Debug)]
pub struct CopyFormatArg {
    /// How chunks travel to Postgres: binary COPY files beside the CSV files, or the CSV files [default: binary]
    #[arg(long, value_name = "binary|csv", value_parser = parse_value::<CopyFormat>)]
    copy_format: Option<CopyFormat>,
}

#[derive(Args, Debug)]
pub struct IoTimeoutArg {
    /// Seconds one network step may take before the server is taken for gone [default: 300]
    #[arg(long, value_name = "SECONDS")]
    io_timeout: Option<u64>,
}

#[derive(Args, Debug)]
pub struct RestartArg {
    /// Discard the workdir's plan and start over: empties the plan's target tables (asks
    /// first, unless --yes)
    #[arg(long)]
    restart: bool,
}

#[derive(Args, Debug)]
pub struct ExportRestartArg {
    /// Forget what an earlier export wrote in the workdir and start over
    #[arg(long)]
    restart: bool,
}

#[derive(Args, Debug)]
pub struct ReadersArg {
    /// Concurrent MySQL readers on one snapshot [default: 3]
    #[arg(long)]
    readers: Option<usize>,
}

#[derive(Args, Debug)]
pub struct ShowValuesArg {
    /// Show value excerpts of differing rows (the data are personal: off by default)
    #[arg(long)]
    show_values: bool,
}

#[derive(Args, Debug)]
pub struct YesArg {
    /// Do not ask before emptying target tables.
    #[arg(long)]
    yes: bool,
}

#[derive(Args, Debug)]
pub struct ProjectionArgs {
    /// The downtime window the projection is held against: 30m, 1h, 90s
    #[arg(long, value_name = "DURATION", value_parser = crate::report::render::parse_window)]
    window: Option<f64>,
    /// Project the rehearsal to a production source of this many rows [default: the
    /// source's own statistics when the rehearsal chose some of its tables with --tables]
    #[arg(long, value_name = "ROWS")]
    scale_to_rows: Option<u64>,
}

/// A value of an option whose type knows how to read itself.
fn parse_value<T: std::str::FromStr<Err = String>>(text: &str) -> Result<T, String> {
    text.parse()
}

/// A group of arguments writes what it was given.
pub trait Fill {
    fn fill(self, given: &mut Given);
}

macro_rules! fill {
    ($group:ty => $($field:ident),+) => {
        impl Fill for $group {
            fn fill(self, given: &mut Given) {
                $(given.$field = self.$field;)+
            }
        }
    };
}

fill!(ConfigArg => config);
fill!(SourceArg => source);
fill!(TargetArg => target);
fill!(TargetSchemaArg => target_schema);
fill!(WorkdirArg => workdir);
fill!(SelectionArgs => exclude, tables, zero_dates, source_timezone, drop_column);
fill!(ExportArgs => readers, encoders, chunk_mib, chunk_rows, parquet);
fill!(WritersArg => writers);
fill!(SessionsArg => writers);
fill!(CopyFormatArg => copy_format);
fill!(IoTimeoutArg => io_timeout);
fill!(RestartArg => restart);
fill!(ExportRestartArg => restart);
fill!(YesArg => yes);
fill!(ReadersArg => readers);
fill!(ShowValuesArg => show_values);
fill!(ProjectionArgs => window, scale_to_rows);

impl Given {
    /// The command line merged with the configuration file (the command line wins) and the
    /// defaults, validated.
    pub fn options(self) -> Result<Options, Error> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let mut exclude = file.exclude;
        exclude.extend(self.exclude);
        let mut drop_columns = std::collections::BTreeSet::new();
        for text in file.drop_columns.iter().chain(&self.drop_column) {
            drop_columns.insert(parse_column_ref(text)?);
        }
        // UTC needs no zone name: values are written with `+00`.
        let source_timezone = self
            .source_timezone
            .or(file.source_timezone)
            .filter(|z| !z.eq_ignore_ascii_case("utc"));
        let options = Options {
            source: self.source.map(DbUrl::new).or(file.source),
            target: self.target.map(DbUrl::new).or(file.target),
            target_schema: self
                .target_schema
                .or(file.target_schema)
                .unwrap_or_else(|| defaults::TARGET_SCHEMA.to_string()),
            workdir: self.workdir.or(file.workdir),
            selection: Selection {
                tables: TableFilter {
                    only: self.tables.or(file.tables),
                    exclude,
                },
                mapping: MappingOptions {
                    zero_dates: self.zero_dates.or(file.zero_dates).unwrap_or_default(),
                    source_timezone: source_timezone.map(Into::into),
                    drop_columns,
                },
            },
            readers: self.readers.or(file.readers).unwrap_or(defaults::READERS),
            writers: self.writers.or(file.writers).unwrap_or(defaults::WRITERS),
            encoders: self.encoders.or(file.encoders).unwrap_or(cores),
            chunk_bytes: self
                .chunk_mib
                .or(file.chunk_mib)
                .unwrap_or(defaults::CHUNK_MIB)
                << 20,
            chunk_rows: self.chunk_rows.or(file.chunk_rows),
            restart: self.restart,
            io_timeout: std::time::Duration::from_secs(
                self.io_timeout
                    .or(file.io_timeout)
                    .unwrap_or(defaults::IO_TIMEOUT_SECS),
            ),
            copy_format: self.copy_format.or(file.copy_format).unwrap_or_default(),
            show_values: self.show_values,
            critical: file.critical,
            parquet: self.parquet || file.parquet.unwrap_or(false),
            projection: crate::report::render::Projection {
                window_s: self.window,
                scale_to_rows: self.scale_to_rows,
            },
        };
        options.validate()?;
        Ok(options)
    }
}
