//! The command line: each command's arguments ([`args`]) and `pgclipper.toml` merged into
//! validated [`crate::config::Options`], turned into the settings of the command, the
//! command run and its outcome printed ([`print`]).

#[macro_use]
mod print;
mod args;
mod logs;
mod progress;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use args::*;

use crate::commands;
use crate::error::{Error, Exit};
use crate::url::redact_urls;

#[derive(Parser, Debug)]
#[command(
    name = "pgclipper",
    version,
    about = "Moves a MySQL/MariaDB database into an existing Postgres schema."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as `human` text or `json` lines (default: human on a terminal, JSON
    /// otherwise; every JSON line carries the run id).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    log_format: Option<logs::LogFormat>,
    /// Only warnings and errors in the log, and no progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read both catalogs and report every problem at once; moves no data. With --workdir,
    /// judge what `migrate` on that workdir would do.
    Check(CheckArgs),
    /// Export every table into chunk files and load them into Postgres.
    Migrate(MigrateArgs),
    /// Export every table into chunk files only (reads the target catalog for the conversions).
    Export(ExportCommandArgs),
    /// Load the chunk files of an earlier export (several processes may share one workdir).
    Import(ImportArgs),
    /// Prove the migration: compare every row of every planned table on both sides, and the
    /// keys, constraints, indexes, foreign keys and sequences; exit 1 on any difference.
    Verify(VerifyArgs),
    /// Where a running or interrupted run stands: chunks loaded, in flight and left, rows,
    /// rate, time left, the last error.
    Status(StatusArgs),
    /// Render the workdir's report.json as report.md and report.html: the timeline of every
    /// phase and table, throughput, the slowest tables, the projected downtime.
    Report(ReportArgs),
    /// The way back: empty the tables the workdir's plan loaded, restore the target's keys,
    /// constraints, indexes, foreign keys and sequences, clear the ledger and the workdir. The
    /// source is never written.
    Reset(ResetArgs),
}

/// A command's arguments: the groups it uses, flattened, and how they fill a [`Given`].
macro_rules! command_args {
    ($name:ident { $($group:ident: $ty:ty),+ $(,)? }) => {
        #[derive(Args, Debug)]
        struct $name {
            $(#[command(flatten)] $group: $ty,)+
        }

        impl $name {
            fn given(self) -> Given {
                let mut given = Given::default();
                $(self.$group.fill(&mut given);)+
                given
            }
        }
    };
}

command_args!(CheckArgs {
    config: ConfigArg,
    source: SourceArg,
    target: TargetArg,
    schema: TargetSchemaArg,
    workdir: WorkdirArg,
    selection: SelectionArgs,
    timeout: IoTimeoutArg,
});
command_args!(MigrateArgs {
    config: ConfigArg,
    source: SourceArg,
    target: TargetArg,
    schema: TargetSchemaArg,
    workdir: WorkdirArg,
    selection: SelectionArgs,
    export: ExportArgs,
    writers: WritersArg,
    format: CopyFormatArg,
    timeout: IoTimeoutArg,
    restart: RestartArg,
    yes: YesArg,
});
command_args!(ExportCommandArgs {
    config: ConfigArg,
    source: SourceArg,
    target: TargetArg,
    schema: TargetSchemaArg,
    workdir: WorkdirArg,
    selection: SelectionArgs,
    export: ExportArgs,
    format: CopyFormatArg,
    timeout: IoTimeoutArg,
    restart: ExportRestartArg,
});
command_args!(ImportArgs {
    config: ConfigArg,
    target: TargetArg,
    workdir: WorkdirArg,
    writers: WritersArg,
    format: CopyFormatArg,
    timeout: IoTimeoutArg,
});
command_args!(VerifyArgs {
    config: ConfigArg,
    source: SourceArg,
    target: TargetArg,
    schema: TargetSchemaArg,
    workdir: WorkdirArg,
    selection: SelectionArgs,
    readers: ReadersArg,
    sessions: SessionsArg,
    timeout: IoTimeoutArg,
    show_values: ShowValuesArg,
});
command_args!(StatusArgs {
    config: ConfigArg,
    target: TargetArg,
    workdir: WorkdirArg,
});
command_args!(ReportArgs {
    config: ConfigArg,
    workdir: WorkdirArg,
    projection: ProjectionArgs,
});
command_args!(ResetArgs {
    config: ConfigArg,
    target: TargetArg,
    workdir: WorkdirArg,
    yes: YesArg,
});

/// Runs the command line; returns the process exit code.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return Ok(ExitCode::from(refuse_arguments(e))),
    };
    use std::io::IsTerminal;
    let bars = !cli.quiet && std::io::stderr().is_terminal() && cli.command.moves_data();
    let json_logs = if bars {
        logs::init(cli.log_format, cli.quiet, progress::AboveBars)
    } else {
        logs::init(cli.log_format, cli.quiet, std::io::stderr)
    };
    let progress = bars.then(progress::Progress::start);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pgclipper-io")
        .build()?;
    let after_signal = cli.command.after_signal();
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = dispatch(cli.command) => outcome,
            signal = signals::first() => Err(Error::Interrupted { signal, state: after_signal }),
        }
    });
    // Tasks still blocked on a dead server must not hold the exit; tasks cut off here
    // had their transactions rolled back by the server as their connections closed.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    drop(progress);
    let exit_code = match &outcome {
        Ok(exit) => *exit as u8,
        Err(e) => e.exit() as u8,
    };
    crate::report::finish(crate::report::Ending {
        exit_code,
        error: outcome.as_ref().err(),
    });
    match outcome {
        Ok(exit) => Ok(ExitCode::from(exit as u8)),
        Err(e) => {
            // The message already carries what its causes say that is safe to show; the
            // drivers' own messages may quote whole rows, so the chain is not printed.
            let code = e.exit() as u8;
            if json_logs && tracing::enabled!(tracing::Level::ERROR) {
                // One stream of JSON lines: the last one says why the run ended.
                tracing::error!(exit_code = code, "pgclipper: error: {e}");
            } else {
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "pgclipper: error: {e}");
            }
            Ok(ExitCode::from(code))
        }
    }
}

/// Prints clap's message about the arguments (help and version on stdout, errors on
/// stderr, the password of any URL the operator typed redacted); returns the exit
/// code (2 for a usage error, 0 for help).
fn refuse_arguments(e: clap::Error) -> u8 {
    use std::io::Write;
    let text = e.render().to_string();
    if e.use_stderr() {
        let _ = write!(std::io::stderr(), "{}", redact_urls(&text));
    } else {
        // Help and version quote nothing the operator typed.
        let _ = write!(std::io::stdout(), "{text}");
    }
    e.exit_code() as u8
}

impl Command {
    /// Whether the command moves or reads data long enough to show progress bars.
    fn moves_data(&self) -> bool {
        matches!(
            self,
            Command::Migrate(_) | Command::Export(_) | Command::Import(_) | Command::Verify(_)
        )
    }

    /// What an interrupted run of this command leaves behind, and what to do next.
    fn after_signal(&self) -> &'static str {
        match self {
            Command::Check(_) => "check changes nothing",
            Command::Export(_) => {
                "chunk files being written were left unfinished and will be written again; \
                 run the same `pgclipper export` to go on"
            }
            Command::Migrate(_) | Command::Import(_) => {
                "chunks being loaded were rolled back, chunks loaded stay recorded in the \
                 ledger, and the loaded tables' keys, constraints, indexes and foreign keys \
                 stay deferred (recorded in pgclipper.deferred_constraints): run the same \
                 command again to resume, or `pgclipper reset` on its workdir to empty the \
                 tables and put everything back"
            }
            Command::Reset(_) => "run the same `pgclipper reset` again to finish it",
            Command::Verify(_) => "verify changes nothing; run it again",
            Command::Status(_) | Command::Report(_) => "it changes nothing",
        }
    }
}

mod signals {
    /// The name of the first SIGINT or SIGTERM this process receives.
    pub async fn first() -> &'static str {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            // Without handlers the default action stays: the process ends at once.
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    }
}

async fn dispatch(command: Command) -> Result<Exit, Error> {
    match command {
        Command::Check(args) => {
            let report = commands::check::run(&args.given().options()?.check()?).await?;
            print::check(&report);
            Ok(if report.problems.is_empty() {
                Exit::Success
            } else {
                Exit::Data
            })
        }
        Command::Migrate(args) => {
            let given = args.given();
            let yes = given.yes;
            let settings = recorded(given.options()?).migrate()?;
            if settings.restart && commands::resume::has_plan(&settings.workdir) {
                let reset = crate::config::ResetSettings {
                    target: settings.target.url.clone(),
                    workdir: settings.workdir.clone(),
                    load: settings.load.clone(),
                };
                let preview = commands::reset::preview(&reset).await?;
                say!("--restart first resets the workdir's plan:");
                print::reset_preview(&preview, &settings.workdir);
                if !confirmed(yes, "--restart")? {
                    return Ok(Exit::Usage);
                }
            }
            let summary = commands::migrate::run(&settings).await?;
            print::summary("migrated", &summary, true);
            Ok(Exit::Success)
        }
        Command::Export(args) => {
            let summary =
                commands::export::run(&recorded(args.given().options()?).export()?).await?;
            print::summary("exported", &summary, false);
            Ok(Exit::Success)
        }
        Command::Import(args) => {
            let summary =
                commands::import::run(&recorded(args.given().options()?).import()?).await?;
            print::summary("imported", &summary, true);
            Ok(Exit::Success)
        }
        Command::Verify(args) => {
            let report =
                commands::verify::run(&recorded(args.given().options()?).verify()?).await?;
            print::verify(&report);
            Ok(if report.identical() {
                Exit::Success
            } else {
                Exit::Data
            })
        }
        Command::Status(args) => {
            let status = commands::status::run(&args.given().options()?.status()?).await?;
            print::status(&status);
            Ok(Exit::Success)
        }
        Command::Report(args) => {
            let rendered = commands::report::run(&args.given().options()?.report()?)?;
            print::rendered(&rendered);
            Ok(Exit::Success)
        }
        Command::Reset(args) => reset(args.given()).await,
    }
}

/// `options`, whose description goes into the run's report.
fn recorded(options: crate::config::Options) -> crate::config::Options {
    crate::report::settings(options.describe());
    options
}

async fn reset(given: Given) -> Result<Exit, Error> {
    let yes = given.yes;
    let settings = given.options()?.reset()?;
    let preview = commands::reset::preview(&settings).await?;
    print::reset_preview(&preview, &settings.workdir);
    if !confirmed(yes, "reset")? {
        return Ok(Exit::Usage);
    }
    commands::reset::run(&settings).await?;
    say!("reset done");
    Ok(Exit::Success)
}

/// The operator's yes to emptying target tables: `--yes`, or `reset` typed on a terminal.
fn confirmed(yes: bool, what: &str) -> Result<bool, Error> {
    use std::io::{BufRead, IsTerminal};
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "{what} empties the plan's target tables and asks first: run it on a terminal, or add --yes"
        )));
    }
    print::prompt("Type `reset` to go on: ");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).ok();
    if answer.trim() != "reset" {
        say!("nothing done");
        return Ok(false);
    }
    Ok(true)
}
