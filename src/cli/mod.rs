//! The command line: arguments, `pgclipper.toml` and environment merged into validated
//! [`Options`], turned into the settings of the command, the command run and its outcome
//! printed ([`print`]).

mod print;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::commands;
use crate::config::{defaults, parse_column_ref, FileConfig, Options, Selection};
use crate::error::{Error, Exit};
use crate::mapping::{MappingOptions, TableFilter, ZeroDates};
use crate::sink::CopyFormat;
use crate::url::DbUrl;

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
    #[arg(long, value_name = "error|null", value_parser = parse_value::<ZeroDates>)]
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
    #[arg(long, value_name = "binary|csv", value_parser = parse_value::<CopyFormat>)]
    copy_format: Option<CopyFormat>,
}

/// A value of an option whose type knows how to read itself.
fn parse_value<T: std::str::FromStr<Err = String>>(text: &str) -> Result<T, String> {
    text.parse()
}

impl RunArgs {
    fn options(self) -> Result<Options, Error> {
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
        };
        options.validate()?;
        Ok(options)
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
            let report = commands::check::run(&args.options()?.check()?).await?;
            print::check(&report);
            Ok(if report.problems.is_empty() {
                Exit::Success
            } else {
                Exit::Data
            })
        }
        Command::Migrate(args) => {
            let summary = commands::migrate::run(&args.options()?.migrate()?).await?;
            print::summary("migrated", &summary);
            Ok(Exit::Success)
        }
        Command::Export(args) => {
            let summary = commands::export::run(&args.options()?.export()?).await?;
            print::summary("exported", &summary);
            Ok(Exit::Success)
        }
        Command::Import(args) => {
            let summary = commands::import::run(&args.options()?.import()?).await?;
            print::summary("imported", &summary);
            Ok(Exit::Success)
        }
        Command::Reset { args, yes } => reset(args, yes).await,
    }
}

async fn reset(args: RunArgs, yes: bool) -> Result<Exit, Error> {
    use std::io::{BufRead, IsTerminal, Write};
    let settings = args.options()?.reset()?;
    let preview = commands::reset::preview(&settings).await?;
    print::reset_preview(&preview, &settings.workdir);
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
    commands::reset::run(&settings).await?;
    println!("reset done");
    Ok(Exit::Success)
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
