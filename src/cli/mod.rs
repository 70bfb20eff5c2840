//! The command line: arguments, `pgclipper.toml` and environment merged into validated
//! [`Settings`], then the command run and its outcome printed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    defaults, parse_column_ref, CopyFormat, DbUrl, FileConfig, Settings, TableFilter,
};
use crate::encode::ZeroDates;
use crate::error::{Error, Exit};
use crate::mapping::MappingOptions;
use crate::pipeline::{self, CheckReport, Summary};

#[derive(Parser, Debug)]
#[command(
    name = "pgclipper",
    version,
    about = "Moves a MySQL/MariaDB database into an existing Postgres schema."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read both catalogs and report every problem at once; moves no data.
    Check(RunArgs),
    /// Export every table into chunk files and load them into Postgres.
    Migrate(RunArgs),
    /// Export every table into chunk files only (reads the target catalog for the conversions).
    Export(RunArgs),
    /// Load the chunk files of an earlier export (several processes may share one workdir).
    Import(RunArgs),
    /// The way back: empty the tables the workdir's plan loaded, restore the target's foreign
    /// keys and sequences, clear the ledger and the workdir. The source is never written.
    Reset {
        #[command(flatten)]
        args: RunArgs,
        /// Do not ask before resetting.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Args, Debug, Default)]
struct RunArgs {
    /// Configuration file (TOML); the command line overrides it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Source URL: mysql://user:pass@host:port/database
    #[arg(
        long,
        env = "PGCLIPPER_SOURCE",
        hide_env_values = true,
        value_name = "URL"
    )]
    source: Option<String>,
    /// Target URL: postgres://user:pass@host:port/database
    #[arg(
        long,
        env = "PGCLIPPER_TARGET",
        hide_env_values = true,
        value_name = "URL"
    )]
    target: Option<String>,
    /// Postgres schema holding the target tables [default: public]
    #[arg(long, value_name = "SCHEMA")]
    target_schema: Option<String>,
    /// Directory for the plan, chunk files and reports.
    #[arg(long, value_name = "DIR")]
    workdir: Option<PathBuf>,
    /// Leave this source table out (repeatable, or comma-separated).
    #[arg(long, value_name = "TABLE", value_delimiter = ',')]
    exclude: Vec<String>,
    /// Copy only these source tables (comma-separated).
    #[arg(long, value_name = "T1,T2", value_delimiter = ',')]
    tables: Option<Vec<String>>,
    /// Concurrent MySQL readers [default: 3]
    #[arg(long)]
    readers: Option<usize>,
    /// Concurrent Postgres COPY writers [default: 3]
    #[arg(long)]
    writers: Option<usize>,
    /// Threads converting values [default: number of cores]
    #[arg(long)]
    encoders: Option<usize>,
    /// Target size of a chunk file in MiB [default: 64]
    #[arg(long, value_name = "MIB")]
    chunk_mib: Option<u64>,
    /// Fixed rows per chunk (overrides --chunk-mib)
    #[arg(long, value_name = "ROWS")]
    chunk_rows: Option<u64>,
    /// What zero dates (0000-00-00, month or day 0) become [default: error]
    #[arg(long, value_enum, value_name = "error|null")]
    zero_dates: Option<ZeroDates>,
    /// Time zone of MySQL datetime values going into timestamptz columns [default: UTC]
    #[arg(long, value_name = "ZONE")]
    source_timezone: Option<String>,
    /// Do not copy this source column (repeatable, or comma-separated): table.column
    #[arg(long, value_name = "TABLE.COLUMN", value_delimiter = ',')]
    drop_column: Vec<String>,
    /// Discard the workdir's plan and what it loaded, and start over
    #[arg(long)]
    restart: bool,
    /// Seconds one network step may take before the server is taken for gone [default: 300]
    #[arg(long, value_name = "SECONDS")]
    io_timeout: Option<u64>,
    /// How chunks travel to Postgres: binary COPY files beside the CSV files, or the CSV files [default: binary]
    #[arg(long, value_enum, value_name = "binary|csv")]
    copy_format: Option<CopyFormat>,
}

impl RunArgs {
    fn settings(self) -> Result<Settings, Error> {
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
        let settings = Settings {
            source: self.source.map(DbUrl::new).or(file.source),
            target: self.target.map(DbUrl::new).or(file.target),
            target_schema: self
                .target_schema
                .or(file.target_schema)
                .unwrap_or_else(|| defaults::TARGET_SCHEMA.to_string()),
            workdir: self.workdir.or(file.workdir),
            tables: TableFilter {
                only: self.tables.or(file.tables),
                exclude,
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
            mapping: MappingOptions {
                zero_dates: self.zero_dates.or(file.zero_dates).unwrap_or_default(),
                source_timezone: source_timezone.map(Into::into),
                drop_columns,
            },
            restart: self.restart,
            io_timeout: std::time::Duration::from_secs(
                self.io_timeout
                    .or(file.io_timeout)
                    .unwrap_or(defaults::IO_TIMEOUT_SECS),
            ),
            copy_format: self.copy_format.or(file.copy_format).unwrap_or_default(),
        };
        settings.validate()?;
        Ok(settings)
    }
}

/// Runs the command line; returns the process exit code.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pgclipper-io")
        .build()?;
    let outcome = runtime.block_on(dispatch(cli.command));
    // Tasks still blocked on a dead server must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(exit) => Ok(ExitCode::from(exit as u8)),
        Err(e) => {
            // The message already carries what its causes say that is safe to show; the
            // drivers' own messages may quote whole rows, so the chain is not printed.
            eprintln!("pgclipper: error: {e}");
            Ok(ExitCode::from(e.exit() as u8))
        }
    }
}

async fn dispatch(command: Command) -> Result<Exit, Error> {
    match command {
        Command::Check(args) => {
            let settings = args.settings()?;
            let report = pipeline::check(&settings).await?;
            print_check(&report);
            Ok(if report.problems.is_empty() {
                Exit::Success
            } else {
                Exit::Data
            })
        }
        Command::Migrate(args) => {
            let settings = args.settings()?;
            settings.require_source()?;
            settings.require_target()?;
            settings.require_workdir()?;
            let summary = pipeline::migrate(&settings).await?;
            print_summary("migrated", &summary);
            Ok(Exit::Success)
        }
        Command::Export(args) => {
            let settings = args.settings()?;
            settings.require_source()?;
            settings.require_target()?;
            settings.require_workdir()?;
            let summary = pipeline::export_only(&settings).await?;
            print_summary("exported", &summary);
            Ok(Exit::Success)
        }
        Command::Import(args) => {
            let settings = args.settings()?;
            settings.require_target()?;
            settings.require_workdir()?;
            let summary = pipeline::import(&settings).await?;
            print_summary("imported", &summary);
            Ok(Exit::Success)
        }
        Command::Reset { args, yes } => reset(args, yes).await,
    }
}

async fn reset(args: RunArgs, yes: bool) -> Result<Exit, Error> {
    use std::io::{BufRead, IsTerminal, Write};
    let settings = args.settings()?;
    settings.require_target()?;
    let workdir = settings.require_workdir()?;
    let preview = pipeline::reset_preview(&settings).await?;
    println!(
        "pgclipper reset of plan {} ({}):",
        preview.plan.plan_id,
        workdir.display()
    );
    println!(
        "  empty {} target tables: {}",
        preview.tables.len(),
        preview.tables.join(", ")
    );
    println!(
        "  restore {} foreign keys and {} sequences as they were",
        preview.foreign_keys, preview.sequences
    );
    println!("  forget the plan in the ledger and remove its files from the workdir");
    println!("  the source is not touched");
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::Usage(
                "reset asks for confirmation: run it on a terminal, or add --yes".into(),
            ));
        }
        print!("Type `reset` to go on: ");
        std::io::stdout().flush().ok();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).ok();
        if answer.trim() != "reset" {
            println!("nothing done");
            return Ok(Exit::Usage);
        }
    }
    pipeline::reset(&settings).await?;
    println!("reset done");
    Ok(Exit::Success)
}

fn print_check(report: &CheckReport) {
    println!(
        "pgclipper check: {} tables, {} columns paired",
        report.tables, report.columns
    );
    for w in &report.warnings {
        println!("  warning: {w}");
    }
    for p in &report.problems {
        println!("  problem: {p}");
    }
    if report.problems.is_empty() {
        println!("no problems: `pgclipper migrate` can run");
    } else {
        println!(
            "{} problem(s): `pgclipper migrate` would refuse to run",
            report.problems.len()
        );
    }
}

fn print_summary(verb: &str, summary: &Summary) {
    let width = summary
        .tables
        .keys()
        .map(|k| k.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<width$}  {:>7}  {:>12}  {:>12}",
        "table", "chunks", "rows", "bytes"
    );
    for (name, t) in &summary.tables {
        println!(
            "{name:<width$}  {:>7}  {:>12}  {:>12}",
            t.chunks, t.rows, t.bytes
        );
    }
    let secs = summary.elapsed.as_secs_f64().max(1e-3);
    println!(
        "pgclipper {verb} {} rows ({:.1} MiB) of {} tables in {:.1} s ({:.0} rows/s, {:.1} MiB/s); {} sequences advanced",
        summary.total_rows(),
        summary.total_bytes() as f64 / 1048576.0,
        summary.tables.len(),
        secs,
        summary.total_rows() as f64 / secs,
        summary.total_bytes() as f64 / 1048576.0 / secs,
        summary.sequences,
    );
}

/// Human-readable logs on a terminal, JSON lines otherwise; `PGCLIPPER_LOG` sets the filter.
fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("PGCLIPPER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}
