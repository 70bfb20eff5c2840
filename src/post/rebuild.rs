//! Putting back what the load took off, table by table: a table's keys, constraints and
//! indexes are built as soon as its data is complete (its last chunk in), while other tables
//! still load; a foreign key is added and validated once both its tables are keyed; then the
//! table's statistics are taken (ANALYZE). A table that foreign keys reference is vacuumed
//! once keyed, before they are validated; a large foreign key whose columns lead an index
//! has its own table vacuumed too, and is validated by a merge join of the two indexes. The
//! rebuild overlaps the load instead of following it, and the largest tables' builds start
//! first among those ready.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_postgres::Client;

use crate::catalog::pg_ident;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::report::record::PhaseGuard;
use crate::sink::{self, ledger, DeferredObject, LoadOptions, ObjectKind};
use crate::url::DbUrl;
use crate::work::{Failure, Retry, Workers};

/// A table as both the plan (`"schema"."table"`) and the ledger (`schema.table`, quoted
/// only where needed) name it.
fn table_key(qualified: &str) -> String {
    qualified.replace('"', "")
}

/// Rebuilding sessions at work while tables still load; all of them once the load is done.
/// On this project's 2-core machine every build competes with the load for the same cores
/// (docs/design.md, "The rebuild overlaps the load", has the measurements).
const REBUILD_SESSIONS_WHILE_LOADING: usize = 1;

/// One piece of rebuilding work.
#[derive(Debug, Clone)]
enum Task {
    /// `loaded`: for a foreign key, which of its tables this run loaded (and takes statistics
    /// of), to be vacuumed before it is validated.
    Restore {
        object: DeferredObject,
        loaded: LoadedEnds,
    },
    /// Fresh statistics for a table whose data and keys are in.
    Analyze(String),
    /// The visibility map of a keyed table that foreign keys reference, before they are
    /// validated: each validation reads the referenced keys, and with the map set it reads
    /// them from the key's index instead of the whole table (docs/design.md, "Referenced
    /// tables vacuumed before their foreign keys").
    Vacuum(String),
}

/// Which tables of a foreign key this run loaded and takes statistics of. When both tables
/// are large and an index of its own table leads with the key's columns, those tables are
/// vacuumed just before it is validated, so that the validation reads both ends from their
/// indexes instead of the tables (docs/design.md, "Large foreign keys validated from both
/// ends' indexes").
#[derive(Debug, Clone, Copy, Default)]
struct LoadedEnds {
    own: bool,
    referenced: bool,
}

impl Task {
    fn table(&self) -> &str {
        match self {
            Task::Restore { object, .. } => &object.table,
            Task::Analyze(table) | Task::Vacuum(table) => table,
        }
    }

    /// The table locks this task holds while it runs, and those it takes only as it starts:
    /// adding a foreign key unchecked locks both tables against each other's validations,
    /// analyses and vacuums, for a moment. Not counted: the vacuum of the referenced table
    /// before a large foreign key is validated from both ends' indexes (rare, and short: that
    /// table was vacuumed once keyed); a task it holds up waits for it.
    fn locks(&self) -> (TableLocks, TableLocks) {
        let on = |table: &str, lock| vec![(table_key(table), lock)];
        match self {
            Task::Analyze(table) | Task::Vacuum(table) => {
                (on(table, Lock::ShareUpdateExclusive), vec![])
            }
            Task::Restore { object, .. } => match object.kind {
                // `ALTER TABLE … ADD PRIMARY KEY / UNIQUE / EXCLUDE`.
                ObjectKind::Constraint => (on(&object.table, Lock::AccessExclusive), vec![]),
                ObjectKind::Index => (on(&object.table, Lock::Share), vec![]),
                ObjectKind::ForeignKey => {
                    let own = table_key(&object.table);
                    let referenced = object.referenced.as_deref().map(table_key);
                    let mut held = vec![(own.clone(), Lock::ShareUpdateExclusive)];
                    let mut starting = vec![(own.clone(), Lock::ShareRowExclusive)];
                    if let Some(referenced) = referenced.filter(|r| *r != own) {
                        held.push((referenced.clone(), Lock::RowShare));
                        starting.push((referenced, Lock::ShareRowExclusive));
                    }
                    (held, starting)
                }
            },
        }
    }
}

/// Tables (`table_key`) and the locks taken on them.
type TableLocks = Vec<(String, Lock)>;

/// The table lock modes the rebuild's statements take (Postgres' "Table-Level Locks").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lock {
    /// `VALIDATE CONSTRAINT`, on the referenced table.
    RowShare,
    /// `CREATE INDEX`.
    Share,
    /// `VACUUM`, `ANALYZE`, `VALIDATE CONSTRAINT` on its own table.
    ShareUpdateExclusive,
    /// `ADD FOREIGN KEY`, on both tables.
    ShareRowExclusive,
    /// `ADD PRIMARY KEY`, `UNIQUE`, `EXCLUDE`.
    AccessExclusive,
}

impl Lock {
    /// Whether a session asking for `self` waits for one holding `other` (on one table).
    fn conflicts_with(self, other: Lock) -> bool {
        use Lock::*;
        match (self, other) {
            (AccessExclusive, _) | (_, AccessExclusive) => true,
            (RowShare, _) | (_, RowShare) => false,
            (Share, Share) => false,
            _ => true,
        }
    }
}

/// Which task a free session takes next. A table's objects wait until its data is
/// complete; a foreign key waits until the keys and indexes of its own table and of the
/// table it references are back (adding it locks both tables against index builds), not for
/// every table's. Keys and indexes go before foreign keys, largest table first.
struct RebuildOrder {
    waiting: Vec<DeferredObject>,
    analyze: VecDeque<String>,
    /// Keyed tables to vacuum before the foreign keys that reference them.
    vacuum: VecDeque<String>,
    /// Tables (`table_key`) that foreign keys still to validate reference, not vacuumed yet.
    unvacuumed: HashSet<String>,
    /// Tables whose data is complete (`table_key`).
    complete: HashSet<String>,
    /// Every table of the plan (`table_key`), and whether it is analyzed by this rebuild.
    tables: Vec<String>,
    /// `table_key` → the name for SQL (`"schema"."table"`, as the plan has it).
    sql_names: HashMap<String, String>,
    analyzing: bool,
    /// Keys and indexes not restored yet (waiting or being built), per table.
    unbuilt: HashMap<String, usize>,
    /// The locks held by each task handed out and not done, and how many tasks may run while
    /// tables still load (each competes with the load for the same cores). A task that would
    /// wait for another's lock is not handed out while that one runs: its session takes other
    /// work instead of waiting (on Alkemio, sessions waited for each other's locks a third of
    /// the time once the load was done).
    running: Vec<TableLocks>,
    while_loading: usize,
    failed: bool,
}

enum Next {
    Run(Task),
    /// Everything left waits for data or for builds in progress.
    Wait,
    Done,
}

impl RebuildOrder {
    fn new(
        objects: Vec<DeferredObject>,
        tables: Vec<String>,
        analyzing: bool,
        while_loading: usize,
    ) -> Self {
        // The objects keep the ledger's names (for SQL, and to be marked restored); the
        // order compares tables by `table_key`.
        let mut unbuilt = HashMap::new();
        for o in objects.iter().filter(|o| o.kind != ObjectKind::ForeignKey) {
            *unbuilt.entry(table_key(&o.table)).or_insert(0) += 1;
        }
        let sql_names = tables.iter().map(|t| (table_key(t), t.clone())).collect();
        let tables: Vec<String> = tables.iter().map(|t| table_key(t)).collect();
        // Only tables this run loaded, and only with statistics (not `reset`'s empty ones).
        let unvacuumed = objects
            .iter()
            .filter(|o| analyzing && o.kind == ObjectKind::ForeignKey)
            .filter_map(|o| o.referenced.as_deref().map(table_key))
            .filter(|referenced| tables.contains(referenced))
            .collect();
        RebuildOrder {
            waiting: objects,
            analyze: VecDeque::new(),
            vacuum: VecDeque::new(),
            unvacuumed,
            complete: HashSet::new(),
            sql_names,
            tables,
            analyzing,
            unbuilt,
            running: Vec::new(),
            while_loading,
            failed: false,
        }
    }

    /// Whether the plan loads `table` (`table_key`).
    fn loads(&self, table: &str) -> bool {
        self.tables.iter().any(|t| t == table)
    }

    fn all_complete(&self) -> bool {
        self.tables.iter().all(|t| self.complete.contains(t))
    }

    /// Whether `table`'s keys and indexes are in place: a table outside the plan (the
    /// other end of a foreign key to or from a loaded table) never lost its own.
    fn built(&self, table: &str) -> bool {
        if !self.loads(table) {
            return true;
        }
        self.complete.contains(table) && self.unbuilt.get(table).is_none_or(|&n| n == 0)
    }

    /// `table`'s data is in: its objects may be built.
    fn table_complete(&mut self, table: &str) {
        let table = table_key(table);
        if self.complete.insert(table.clone()) {
            self.queue_when_built(&table);
        }
    }

    /// Once `table` is keyed: its statistics, and its vacuum if foreign keys reference it.
    fn queue_when_built(&mut self, table: &str) {
        if self.analyzing && self.built(table) && self.loads(table) {
            self.analyze.push_back(table.to_string());
            if self.unvacuumed.contains(table) {
                self.vacuum.push_back(table.to_string());
            }
        }
    }

    /// Whether the foreign keys that reference `table` may be validated: it is vacuumed, or
    /// needs no vacuum here.
    fn vacuumed(&self, table: &str) -> bool {
        !self.unvacuumed.contains(table)
    }

    fn next(&mut self) -> Next {
        if self.failed {
            return Next::Done;
        }
        if self.running.len() >= self.while_loading && !self.all_complete() {
            return Next::Wait;
        }
        let next = self.next_task();
        if let Next::Run(task) = &next {
            self.running.push(task.locks().0);
        }
        next
    }

    /// Whether `task` can start now without waiting for a lock a running task holds. Only
    /// the locks held throughout count on the running side: two foreign keys to one table
    /// take it briefly each, one after the other, and are validated side by side.
    fn free_to_run(&self, task: &Task) -> bool {
        let (held, starting) = task.locks();
        held.iter().chain(&starting).all(|(table, lock)| {
            self.running
                .iter()
                .flatten()
                .all(|(other_table, other_lock)| {
                    table != other_table || !lock.conflicts_with(*other_lock)
                })
        })
    }

    fn next_task(&mut self) -> Next {
        // Foreign keys wait for it: before any other build.
        let vacuum = self
            .vacuum
            .iter()
            .position(|table| self.free_to_run(&Task::Vacuum(table.clone())));
        if let Some(table) = vacuum.and_then(|i| self.vacuum.remove(i)) {
            return Next::Run(Task::Vacuum(self.sql_name(table)));
        }
        let ready = (0..self.waiting.len()).find_map(|i| {
            let object = &self.waiting[i];
            let ready = match object.kind {
                ObjectKind::ForeignKey => match &object.referenced {
                    Some(referenced) => {
                        let referenced = table_key(referenced);
                        self.built(&table_key(&object.table))
                            && self.built(&referenced)
                            && self.vacuumed(&referenced)
                    }
                    // An older ledger does not name the referenced table: wait for all.
                    None => self.all_complete() && self.unbuilt.values().all(|&n| n == 0),
                },
                _ => self.complete.contains(&table_key(&object.table)),
            };
            let task = ready.then(|| self.restoring(object.clone()))?;
            self.free_to_run(&task).then_some((i, task))
        });
        if let Some((i, task)) = ready {
            self.waiting.remove(i);
            return Next::Run(task);
        }
        let analyze = self
            .analyze
            .iter()
            .position(|table| self.free_to_run(&Task::Analyze(table.clone())));
        if let Some(table) = analyze.and_then(|i| self.analyze.remove(i)) {
            return Next::Run(Task::Analyze(self.sql_name(table)));
        }
        let nothing_left =
            self.waiting.is_empty() && self.vacuum.is_empty() && self.analyze.is_empty();
        if nothing_left && self.all_complete() {
            Next::Done
        } else {
            Next::Wait
        }
    }

    /// The task that restores `object`.
    fn restoring(&self, object: DeferredObject) -> Task {
        let loaded_here = |table: Option<&String>| {
            self.analyzing
                && object.kind == ObjectKind::ForeignKey
                && table.is_some_and(|t| self.loads(&table_key(t)))
        };
        let loaded = LoadedEnds {
            own: loaded_here(Some(&object.table)),
            referenced: loaded_here(object.referenced.as_ref()),
        };
        Task::Restore { object, loaded }
    }

    fn sql_name(&self, table: String) -> String {
        self.sql_names.get(&table).cloned().unwrap_or(table)
    }

    /// A task handed out by [`RebuildOrder::next`] no longer runs: its locks are free.
    fn release(&mut self, task: &Task) {
        let held = task.locks().0;
        if let Some(i) = self.running.iter().position(|locks| *locks == held) {
            self.running.remove(i);
        }
    }

    /// A task handed out by [`RebuildOrder::next`] is done.
    fn done(&mut self, task: &Task) {
        self.release(task);
        match task {
            Task::Restore { object, .. } => self.restored(object),
            Task::Vacuum(table) => {
                self.unvacuumed.remove(&table_key(table));
            }
            Task::Analyze(_) => {}
        }
    }

    fn restored(&mut self, object: &DeferredObject) {
        if object.kind != ObjectKind::ForeignKey {
            let table = table_key(&object.table);
            if let Some(n) = self.unbuilt.get_mut(&table) {
                *n -= 1;
            }
            self.queue_when_built(&table);
        }
    }
}

/// Which tables are complete when the rebuild starts.
pub enum Complete<'a> {
    /// Every table (after the load, or for `reset`).
    All,
    /// These (target tables, as the plan names them); the others are announced with
    /// [`Rebuild::table_complete`] as their last chunk is in.
    Some(&'a [String]),
}

/// Each table's chunks still to load; the rebuild hears of every table whose last chunk is
/// in. Shared by the COPY writers.
pub struct Completion {
    /// Plan table name → (target table, chunks left).
    left: Mutex<HashMap<String, (String, usize)>>,
    order: Arc<Mutex<RebuildOrder>>,
    progress: Arc<Notify>,
}

impl Completion {
    /// A chunk of `table` (the plan's name) is loaded, by this process or another.
    pub fn chunk_loaded(&self, table: &str) {
        let mut left = self.left.lock().expect("completion lock");
        let Some((target, n)) = left.get_mut(table) else {
            return;
        };
        *n = n.saturating_sub(1);
        if *n == 0 {
            tracing::info!(
                table,
                "Table loaded: its keys, constraints and indexes are rebuilt now."
            );
            self.order
                .lock()
                .expect("rebuild order lock")
                .table_complete(target);
            self.progress.notify_waiters();
        }
    }

    /// The target tables whose chunks are all loaded.
    pub fn complete_tables(plan: &Plan, loaded: &HashSet<(String, u32)>) -> Vec<String> {
        plan.tables
            .iter()
            .filter(|t| {
                t.chunks
                    .iter()
                    .all(|c| loaded.contains(&(t.name.clone(), c.id)))
            })
            .map(|t| t.target.clone())
            .collect()
    }
}

/// The rebuild under way: sessions taking tasks as tables complete.
pub struct Rebuild {
    order: Arc<Mutex<RebuildOrder>>,
    progress: Arc<Notify>,
    workers: Workers,
    count: usize,
    began: Instant,
    under_way: PhaseGuard,
}

impl Rebuild {
    /// Starts `options.writers` sessions rebuilding what the ledger holds for `plan`'s
    /// tables, analyzing each table once it is keyed when `analyze`.
    /// A rebuild's error is recorded in `failure`, which the load shares: it stops too.
    pub async fn start(
        url: &DbUrl,
        plan: &Plan,
        options: &LoadOptions,
        complete: Complete<'_>,
        analyze: bool,
        failure: &Arc<Failure>,
    ) -> Result<Rebuild> {
        let objects = {
            let client = sink::connect(url).await?;
            ledger::deferred_objects(&client, &plan.plan_id).await?
        };
        let count = objects.len();
        let tables: Vec<String> = plan.tables.iter().map(|t| t.target.clone()).collect();
        let while_loading = options.writers.min(REBUILD_SESSIONS_WHILE_LOADING);
        let mut order = RebuildOrder::new(objects, tables.clone(), analyze, while_loading);
        match complete {
            Complete::All => tables.iter().for_each(|t| order.table_complete(t)),
            Complete::Some(done) => done.iter().for_each(|t| order.table_complete(t)),
        }
        let order = Arc::new(Mutex::new(order));
        let progress = Arc::new(Notify::new());
        let failure = failure.clone();
        let (began, under_way) = (Instant::now(), crate::report::record::rebuild_under_way());
        let timeout = options.io_timeout;
        let workers = Workers::spawn(options.writers, &failure, "a rebuilding session", |_| {
            let (order, progress, url, plan_id, failure) = (
                order.clone(),
                progress.clone(),
                url.clone(),
                plan.plan_id.clone(),
                failure.clone(),
            );
            async move {
                let outcome =
                    rebuild_worker(&order, &progress, &url, &plan_id, timeout, &failure).await;
                if outcome.is_err() {
                    // Sessions waiting for this one's build must not wait forever.
                    order.lock().expect("rebuild order lock").failed = true;
                    progress.notify_waiters();
                }
                outcome
            }
        });
        Ok(Rebuild {
            order,
            progress,
            workers,
            count,
            began,
            under_way,
        })
    }

    /// Counts `plan`'s chunks still to load (`loaded` are in), and tells this rebuild of
    /// each table whose last chunk is in.
    pub fn completion(&self, plan: &Plan, loaded: &HashSet<(String, u32)>) -> Completion {
        let left = plan
            .tables
            .iter()
            .map(|t| {
                let n = t
                    .chunks
                    .iter()
                    .filter(|c| !loaded.contains(&(t.name.clone(), c.id)))
                    .count();
                (t.name.clone(), (t.target.clone(), n))
            })
            .collect();
        Completion {
            left: Mutex::new(left),
            order: self.order.clone(),
            progress: self.progress.clone(),
        }
    }

    /// Once every table is complete: waits for the rest of the rebuild; returns how many
    /// objects were put back.
    pub async fn finish(self) -> Result<usize> {
        {
            let mut order = self.order.lock().expect("rebuild order lock");
            let tables = order.tables.clone();
            tables.iter().for_each(|t| order.table_complete(t));
        }
        self.progress.notify_waiters();
        self.workers.wait().await?;
        crate::report::record::rebuild_phases(self.began, self.under_way);
        Ok(self.count)
    }

    /// The load failed: the sessions take no new task; builds under way end with the
    /// process (their transactions roll back, the objects stay recorded as deferred).
    pub fn abandon(self) {
        self.order.lock().expect("rebuild order lock").failed = true;
        self.progress.notify_waiters();
    }
}

async fn rebuild_worker(
    order: &Mutex<RebuildOrder>,
    progress: &Notify,
    url: &DbUrl,
    plan_id: &str,
    timeout: Duration,
    failure: &Failure,
) -> Result<()> {
    let (mut client, mut probe) = (None, None);
    loop {
        if failure.is_cancelled() {
            return Ok(()); // the load failed: its error is the news
        }
        // Registered before the order is looked at, so a build finishing in between wakes it.
        let notified = progress.notified();
        let next = order.lock().expect("rebuild order lock").next();
        let task = match next {
            Next::Done => return Ok(()),
            Next::Wait => {
                notified.await;
                continue;
            }
            Next::Run(task) => task,
        };
        // A broken connection (a restarting server) loses only the task's transaction: the
        // task is tried again on a new one, by the one retry rule.
        let mut retry = Retry::writer().of_table(task.table());
        loop {
            let tried = async {
                if client.is_none() {
                    let c = sink::connect(url).await?;
                    c.batch_execute("SET maintenance_work_mem = '1GB'")
                        .await
                        .map_err(Error::postgres("raising maintenance_work_mem"))?;
                    probe = Some(sink::connect(url).await?);
                    client = Some(c);
                }
                let client = client.as_mut().expect("connected above");
                let probe = probe.as_ref().expect("connected above");
                run(client, probe, plan_id, &task, timeout).await
            }
            .await;
            match tried {
                Ok(()) => break,
                Err(e) => {
                    (client, probe) = (None, None);
                    let what = "Transient target error while rebuilding; trying again.";
                    if !retry.wait_after(&e, what).await {
                        return Err(e);
                    }
                }
            }
        }
        order.lock().expect("rebuild order lock").done(&task);
        progress.notify_waiters();
    }
}

/// Runs one task on `client`, while `probe` checks that the server still answers.
async fn run(
    client: &mut Client,
    probe: &Client,
    plan_id: &str,
    task: &Task,
    timeout: Duration,
) -> Result<()> {
    match task {
        Task::Restore { object, loaded } => {
            restore(client, probe, plan_id, object, *loaded, timeout).await
        }
        Task::Analyze(table) => {
            let started = Instant::now();
            let (context, sql) = (format!("analyzing {table}"), format!("ANALYZE {table}"));
            while_answering(probe, timeout, &context, client.batch_execute(&sql)).await?;
            crate::report::record::analyzed(table, started);
            Ok(())
        }
        Task::Vacuum(table) => {
            let started = Instant::now();
            vacuum(client, probe, table, timeout).await?;
            tracing::info!(table = %table, seconds = started.elapsed().as_secs_f64(), "Vacuumed before the foreign keys that reference it.");
            Ok(())
        }
    }
}

/// Sets `table`'s visibility map, so that queries read its indexed columns from an index
/// alone (an index-only scan).
async fn vacuum(client: &Client, probe: &Client, table: &str, timeout: Duration) -> Result<()> {
    // The load commits asynchronously, and VACUUM marks no page all-visible while a row's
    // commit is not yet flushed (Postgres sets no hint bit then; CI caught a small table
    // vacuumed too soon): one synchronous commit, of a transaction with an id, flushes the
    // WAL of every commit before it.
    const FLUSH: &str = "BEGIN; SET LOCAL synchronous_commit = on; SELECT txid_current(); COMMIT";
    let (context, sql) = (format!("vacuuming {table}"), format!("VACUUM {table}"));
    let flushed_then_vacuumed = async {
        client.batch_execute(FLUSH).await?;
        client.batch_execute(&sql).await
    };
    while_answering(probe, timeout, &context, flushed_then_vacuumed).await
}

/// Reading a foreign key's two ends from their indexes pays when both tables have this many
/// rows or more: below it, the referenced keys' hash table (some 50 bytes a key) fits the
/// processor's cache and the validation's hash join probes it quickly. Measured on the
/// two-table bench's `events` → `users`: 200k users, the hash join 0.7 s against 0.9 s
/// (vacuum, then merge join); 1M users, 3.2 s against 1.7 s; 4M users, 16.8 s against 8.0 s.
const INDEXED_VALIDATION_MIN_ROWS: u32 = 1_000_000;

/// …and when the foreign key's own table has this many rows a page or more: the vacuum that
/// sets its visibility map reads every page, and on wide rows (Alkemio's authorization
/// policies, 8 a page) it costs more than the hash join's probes it saves.
const INDEXED_VALIDATION_MIN_ROWS_PER_PAGE: u32 = 20;

/// Whether foreign key `name` of `table` (added, unchecked) is better validated from
/// indexes: both tables are large enough (above), and an index of its own table leads with
/// the key's columns (the referenced columns always have theirs, a unique one).
async fn read_from_indexes_pays(client: &Client, table: &str, name: &str) -> Result<bool> {
    let context = format!("looking for an index of foreign key {name}'s columns");
    let sql = format!(
        "SELECT own.reltuples >= {INDEXED_VALIDATION_MIN_ROWS}
            AND own.reltuples >= {INDEXED_VALIDATION_MIN_ROWS_PER_PAGE} * own.relpages
            AND parent.reltuples >= {INDEXED_VALIDATION_MIN_ROWS}
            AND EXISTS (
                SELECT 1
                FROM pg_index i
                JOIN pg_class x ON x.oid = i.indexrelid
                JOIN pg_am am ON am.oid = x.relam AND am.amname = 'btree'
                WHERE i.indrelid = c.conrelid AND i.indisvalid AND i.indpred IS NULL
                  AND i.indnkeyatts >= cardinality(c.conkey)
                  AND (SELECT array_agg(k ORDER BY k) FROM unnest(c.conkey) k)
                    = (SELECT array_agg(k ORDER BY k)
                       FROM unnest((i.indkey::int2[])[0:cardinality(c.conkey) - 1]) k))
         FROM pg_constraint c
         JOIN pg_class own ON own.oid = c.conrelid
         JOIN pg_class parent ON parent.oid = c.confrelid
         WHERE c.conname = $1 AND c.conrelid = to_regclass($2) AND c.contype = 'f'"
    );
    let row = client
        .query_opt(&sql, &[&name, &table])
        .await
        .map_err(Error::postgres(&context))?;
    Ok(row.is_some_and(|r| r.get(0)))
}

/// Whether nine in ten pages of both tables of foreign key `name` (on `table`) are marked
/// all-visible, so that an index-only scan reads few rows from the table itself. A
/// transaction older than the last rows, still running when the table was vacuumed, keeps
/// them from being marked.
async fn both_ends_visible(client: &Client, table: &str, name: &str) -> Result<bool> {
    let context = format!("reading the visibility of foreign key {name}'s tables");
    let row = client
        .query_one(
            "SELECT coalesce(bool_and(r.relallvisible >= 0.9 * r.relpages), false)
             FROM pg_constraint c JOIN pg_class r ON r.oid IN (c.conrelid, c.confrelid)
             WHERE c.conname = $1 AND c.conrelid = to_regclass($2) AND c.contype = 'f'",
            &[&name, &table],
        )
        .await
        .map_err(Error::postgres(&context))?;
    Ok(row.get(0))
}

/// Re-creates one object, and marks it restored in the ledger in the same transaction.
async fn restore(
    client: &mut Client,
    probe: &Client,
    plan_id: &str,
    object: &DeferredObject,
    loaded: LoadedEnds,
    timeout: Duration,
) -> Result<()> {
    let DeferredObject {
        table, name, kind, ..
    } = object;
    let context = format!("restoring {kind} {name} on {table}");
    let started = Instant::now();
    let steps = ForeignKeySteps::of(object);
    let mut merge_join = false;
    if let Some(steps) = &steps {
        // Added unchecked first, committed at once. Adding locks both tables with a lock
        // that conflicts with itself; validating locks only its own table, and lighter, so
        // the 60 foreign keys to one parent (Alkemio's authorization_policy) are validated
        // side by side instead of one after another. An interrupted run may have left it
        // added and unchecked: then it is only validated (dropping it would lock its table
        // against every other session's work, even when there is nothing to drop).
        let added = client
            .query_opt(
                "SELECT 1 FROM pg_constraint WHERE conname = $1 AND conrelid = to_regclass($2)",
                &[&object.name, &object.table],
            )
            .await
            .map_err(Error::postgres(&context))?;
        if added.is_none() {
            let add = client.batch_execute(&steps.add_unchecked);
            while_answering(probe, timeout, &context, add).await?;
        }
        if loaded.own && read_from_indexes_pays(client, &object.table, &object.name).await? {
            // A vacuum skips the pages an earlier one marked: the referenced table's, queued
            // once it was keyed, left only rows that a transaction then running could not
            // see yet; this table's next foreign key finds it done.
            vacuum(client, probe, &object.table, timeout).await?;
            if let (true, Some(referenced)) = (loaded.referenced, &object.referenced) {
                vacuum(client, probe, referenced, timeout).await?;
            }
            merge_join = both_ends_visible(client, &object.table, &object.name).await?;
            let seconds = started.elapsed().as_secs_f64();
            tracing::info!(table = %table, object = %name, seconds, merge_join, "Vacuumed before validating a foreign key from its index.");
        }
    }
    let tx = client
        .transaction()
        .await
        .map_err(Error::postgres(&context))?;
    if merge_join {
        // Both ends are read from their indexes, in key order: a merge join walks them side
        // by side, where a hash join (the planner's pick) probes its table at random, a
        // cache miss a row (measured in docs/design.md).
        tx.batch_execute("SET LOCAL enable_hashjoin = off")
            .await
            .map_err(Error::postgres(&context))?;
    }
    let statement = steps.as_ref().map_or(&object.restore, |s| &s.validate);
    match (
        while_answering(probe, timeout, &context, tx.batch_execute(statement)).await,
        &steps,
    ) {
        (Err(e), Some(steps)) if is_foreign_key_violation(&e) => {
            drop(tx);
            return Err(refused_foreign_key(client, object, steps, e).await);
        }
        (built, _) => built?,
    }
    ledger::restored(&tx, plan_id, object).await?;
    tx.commit().await.map_err(Error::postgres(&context))?;
    tracing::info!(table = %table, object = %name, kind = %kind, seconds = started.elapsed().as_secs_f64(), "Restored.");
    crate::report::rebuilt(table, *kind == ObjectKind::ForeignKey, started);
    Ok(())
}

/// Runs `statement` while `probe` checks that the server still answers. A build may rightly
/// take long, so it has no time limit of its own; a server that stops answering must still
/// end the run: another session asks it, again and again.
async fn while_answering(
    probe: &Client,
    timeout: Duration,
    context: &str,
    statement: impl std::future::Future<Output = std::result::Result<(), tokio_postgres::Error>>,
) -> Result<()> {
    tokio::select! {
        done = statement => done.map_err(Error::postgres(context)),
        dead = server_stops_answering(probe, timeout, context) => Err(dead),
    }
}

/// A foreign key's way back in two statements: added unchecked (`NOT VALID`), then
/// validated. `None` for other objects, and for a foreign key that was unchecked before the
/// load (it goes back as it was).
#[derive(Debug, PartialEq)]
struct ForeignKeySteps {
    drop_if_exists: String,
    add_unchecked: String,
    validate: String,
}

impl ForeignKeySteps {
    fn of(object: &DeferredObject) -> Option<ForeignKeySteps> {
        if object.kind != ObjectKind::ForeignKey || object.restore.ends_with(" NOT VALID") {
            return None;
        }
        // `ALTER TABLE <table> ADD CONSTRAINT <name> FOREIGN KEY …`, as deferral wrote it.
        let name = pg_ident(&object.name);
        let (alter_table, _) = object
            .restore
            .split_once(&format!(" ADD CONSTRAINT {name} FOREIGN KEY "))?;
        Some(ForeignKeySteps {
            drop_if_exists: format!("{alter_table} DROP CONSTRAINT IF EXISTS {name}"),
            add_unchecked: format!("{} NOT VALID", object.restore),
            validate: format!("{alter_table} VALIDATE CONSTRAINT {name}"),
        })
    }
}

/// The statement that takes a restored foreign key off again (`reset`).
pub fn dropping(object: &DeferredObject) -> Option<String> {
    ForeignKeySteps::of(object).map(|steps| steps.drop_if_exists)
}

fn is_foreign_key_violation(e: &Error) -> bool {
    matches!(e, Error::Postgres { cause, .. }
        if cause.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION))
}

/// Postgres refused to validate a foreign key: rows of the table name parents that are not
/// there. The unchecked constraint is taken off again (the ledger still holds it, so the
/// target is as the failed run found it), and the error names the first such row by its key
/// and how many there are, in the words of the other refusals. Postgres' own message is the
/// error when the row cannot be found (a `MATCH FULL` key half NULL).
async fn refused_foreign_key(
    client: &Client,
    object: &DeferredObject,
    steps: &ForeignKeySteps,
    refused: Error,
) -> Error {
    let named = first_orphan(client, object).await;
    let _ = client.batch_execute(&steps.drop_if_exists).await;
    let Ok(Some(orphan)) = named else {
        return refused; // a 23503: exit 1 as it is
    };
    let Orphan {
        table,
        key,
        columns,
        parent,
        parent_columns,
        values,
        rows,
    } = orphan;
    let name = &object.name;
    let others = match rows {
        1 => "the only such row".to_string(),
        n => format!("{} more rows of `{table}` like it", n - 1),
    };
    Error::Data(format!(
        "table `{table}`, key {key}, column {columns}: `{parent}` has no row with \
         {parent_columns} = {values}, which foreign key {name} requires ({others}); the rows \
         stay loaded and {name} stays off (recorded in pgclipper.deferred_constraints): add \
         the missing rows to `{parent}` or correct those of `{table}` in the target, then \
         `pgclipper migrate` on the same workdir puts it back"
    ))
}

/// The first row of a foreign key's table whose parent is missing.
struct Orphan {
    table: String,
    /// `id=11`, as the other refusals name a row.
    key: String,
    /// `` `parent_id` `` or `` (`a`, `b`) ``.
    columns: String,
    parent: String,
    parent_columns: String,
    /// The row's values in those columns: `3`, `(3, 4)`.
    values: String,
    /// How many rows of the table lack their parent.
    rows: i64,
}

/// Finds the constraint's columns in the catalog (it is there, unchecked), then the rows
/// that fail it as `MATCH SIMPLE` does: every column of the key set, no parent row equal.
async fn first_orphan(client: &Client, object: &DeferredObject) -> Result<Option<Orphan>> {
    let context = format!("looking for the rows foreign key {} refuses", object.name);
    let columns = |rel: &str, keys: &str| {
        format!(
            "(SELECT array_agg(a.attname::text ORDER BY k.i) FROM unnest({keys}) WITH ORDINALITY k(n, i)
              JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.n)"
        )
    };
    let row = client
        .query_opt(
            &format!(
                "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text,
                        (SELECT relname::text FROM pg_class WHERE oid = c.conrelid),
                        (SELECT relname::text FROM pg_class WHERE oid = c.confrelid),
                        {}, {},
                        (SELECT {} FROM pg_index x WHERE x.indrelid = c.conrelid AND x.indisprimary)
                 FROM pg_constraint c
                 WHERE c.conname = $1 AND c.conrelid = to_regclass($2) AND c.contype = 'f'",
                columns("c.conrelid", "c.conkey"),
                columns("c.confrelid", "c.confkey"),
                columns("x.indrelid", "x.indkey"),
            ),
            &[&object.name, &object.table],
        )
        .await
        .map_err(Error::postgres(&context))?;
    let Some(row) = row else { return Ok(None) };
    let (table_sql, parent_sql, table, parent): (String, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let (own, referenced): (Vec<String>, Vec<String>) = (row.get(4), row.get(5));
    let key_columns: Vec<String> = row.get::<_, Option<Vec<String>>>(6).unwrap_or_default();
    let quoted = |names: &[String]| names.iter().map(|n| pg_ident(n)).collect::<Vec<_>>();
    let (own_sql, referenced_sql) = (quoted(&own), quoted(&referenced));
    let set = own_sql
        .iter()
        .map(|c| format!("c.{c} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let equal = own_sql
        .iter()
        .zip(&referenced_sql)
        .map(|(c, p)| format!("p.{p} = c.{c}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let texts = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("c.{n}::text"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let shown_key = if key_columns.is_empty() {
        &own
    } else {
        &key_columns
    };
    let sql = format!(
        "SELECT ARRAY[{}], ARRAY[{}], count(*) OVER ()
         FROM ONLY {table_sql} c
         WHERE {set} AND NOT EXISTS (SELECT 1 FROM ONLY {parent_sql} p WHERE {equal})
         LIMIT 1",
        texts(&quoted(shown_key)),
        texts(&own_sql),
    );
    let Some(found) = client
        .query_opt(&sql, &[])
        .await
        .map_err(Error::postgres(&context))?
    else {
        return Ok(None);
    };
    let (key_values, values): (Vec<Option<String>>, Vec<Option<String>>) =
        (found.get(0), found.get(1));
    let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "NULL".into());
    let listed = |items: Vec<String>| match items.len() {
        1 => items.into_iter().next().unwrap_or_default(),
        _ => format!("({})", items.join(", ")),
    };
    let named = |names: &[String]| listed(names.iter().map(|n| format!("`{n}`")).collect());
    Ok(Some(Orphan {
        key: shown_key
            .iter()
            .zip(&key_values)
            .map(|(n, v)| format!("{n}={}", value(v)))
            .collect::<Vec<_>>()
            .join(", "),
        columns: named(&own),
        parent_columns: named(&referenced),
        values: listed(values.iter().map(value).collect()),
        rows: found.get(2),
        table,
        parent,
    }))
}

/// Resolves once `probe` gets no answer to `SELECT 1` within `timeout` (asking every
/// `timeout / 2`, at most every 10 s): the error that ends the run. Pending while the server
/// answers, however long the build it waits for takes.
async fn server_stops_answering(probe: &Client, timeout: Duration, doing: &str) -> Error {
    let every = (timeout / 2).clamp(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        tokio::time::sleep(every).await;
        let answer = tokio::time::timeout(timeout, probe.simple_query("SELECT 1")).await;
        if !matches!(answer, Ok(Ok(_))) {
            return Error::Environment(format!(
                "the target stopped answering while {doing} (no answer to a liveness check within {} s): `pgclipper migrate` on the same workdir resumes",
                timeout.as_secs()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(
        table: &str,
        name: &str,
        kind: ObjectKind,
        referenced: Option<&str>,
    ) -> DeferredObject {
        DeferredObject {
            table: table.into(),
            name: name.into(),
            kind,
            restore: String::new(),
            referenced: referenced.map(Into::into),
        }
    }

    /// The next task, as if its session were done with it at once (for the order of
    /// dependencies; the tests of locks hold their tasks).
    fn take(order: &mut RebuildOrder) -> Option<String> {
        let next = order.next();
        if let Next::Run(task) = &next {
            order.release(task);
        }
        match next {
            Next::Run(task) => Some(take_name(&task)),
            Next::Wait => None,
            Next::Done => Some("done".into()),
        }
    }

    fn take_name(task: &Task) -> String {
        match task {
            Task::Restore { object, .. } => object.name.clone(),
            Task::Analyze(t) => format!("analyze {t}"),
            Task::Vacuum(t) => format!("vacuum {t}"),
        }
    }

    fn order(objects: Vec<DeferredObject>, tables: &[&str], analyzing: bool) -> RebuildOrder {
        let tables = tables.iter().map(|t| t.to_string()).collect();
        RebuildOrder::new(objects, tables, analyzing, usize::MAX)
    }

    use ObjectKind::{Constraint, ForeignKey, Index};

    #[test]
    fn a_tables_keys_wait_for_its_data_and_its_statistics_for_its_keys() {
        let mut order = order(
            vec![
                object("public.events", "events_pkey", Constraint, None),
                object("public.events", "events_at", Index, None),
                object("public.users", "users_pkey", Constraint, None),
            ],
            &[
                "\"public\".\"events\"",
                "\"public\".\"users\"",
                "\"public\".\"tags\"",
            ],
            true,
        );
        assert_eq!(take(&mut order), None, "no table is complete yet");
        order.table_complete("\"public\".\"users\"");
        let users_pkey = order.waiting[2].clone();
        assert_eq!(take(&mut order).as_deref(), Some("users_pkey"));
        assert_eq!(take(&mut order), None, "events still loads");
        order.restored(&users_pkey);
        assert_eq!(
            take(&mut order).as_deref(),
            Some("analyze \"public\".\"users\"")
        );
        // A table without deferred objects is analyzed once complete.
        order.table_complete("\"public\".\"tags\"");
        assert_eq!(
            take(&mut order).as_deref(),
            Some("analyze \"public\".\"tags\"")
        );
        order.table_complete("\"public\".\"events\"");
        let (pkey, index) = (order.waiting[0].clone(), order.waiting[1].clone());
        assert_eq!(take(&mut order).as_deref(), Some("events_pkey"));
        assert_eq!(take(&mut order).as_deref(), Some("events_at"));
        order.restored(&pkey);
        // Nothing left to start: an idle session leaves; the one building goes on.
        assert_eq!(take(&mut order).as_deref(), Some("done"));
        order.restored(&index);
        assert_eq!(
            take(&mut order).as_deref(),
            Some("analyze \"public\".\"events\"")
        );
        assert_eq!(take(&mut order).as_deref(), Some("done"));
    }

    #[test]
    fn while_tables_load_only_so_many_tasks_run_then_all() {
        let tables = ["a", "b", "c"].map(String::from).to_vec();
        let objects = vec![
            object("a", "a_pkey", Constraint, None),
            object("b", "b_pkey", Constraint, None),
            object("c", "c_pkey", Constraint, None),
        ];
        let mut order = RebuildOrder::new(objects, tables, false, 1);
        order.table_complete("a");
        order.table_complete("b");
        let Next::Run(first) = order.next() else {
            panic!("a task")
        };
        assert!(
            matches!(order.next(), Next::Wait),
            "c still loads: one task at a time"
        );
        order.done(&first);
        let Next::Run(second) = order.next() else {
            panic!("a task")
        };
        order.table_complete("c");
        // The load is done: every session may work.
        assert!(matches!(order.next(), Next::Run(_)));
        order.done(&second);
    }

    #[test]
    fn a_foreign_key_waits_for_the_keys_of_both_its_tables_only() {
        let mut order = order(
            vec![
                object("events", "events_pkey", Constraint, None),
                object("users", "users_pkey", Constraint, None),
                object("tags", "tags_pkey", Constraint, None),
                object("events", "events_user_fk", ForeignKey, Some("users")),
                object("tags", "tags_self_fk", ForeignKey, Some("tags")),
            ],
            &["events", "users", "tags"],
            false,
        );
        ["events", "users", "tags"]
            .iter()
            .for_each(|t| order.table_complete(t));
        let events_pkey = order.waiting[0].clone();
        let users_pkey = order.waiting[1].clone();
        let tags_pkey = order.waiting[2].clone();
        assert_eq!(take(&mut order).as_deref(), Some("events_pkey"));
        assert_eq!(take(&mut order).as_deref(), Some("users_pkey"));
        order.restored(&users_pkey);
        assert_eq!(take(&mut order).as_deref(), Some("tags_pkey"));
        // events_pkey and tags_pkey are still being built: both foreign keys wait.
        assert_eq!(take(&mut order), None);
        order.restored(&tags_pkey);
        assert_eq!(take(&mut order).as_deref(), Some("tags_self_fk"));
        assert_eq!(take(&mut order), None);
        order.restored(&events_pkey);
        assert_eq!(take(&mut order).as_deref(), Some("events_user_fk"));
        assert_eq!(take(&mut order).as_deref(), Some("done"));
    }

    #[test]
    fn a_task_that_would_wait_for_a_running_tasks_lock_is_not_handed_out() {
        let restore = |table: &str, name: &str, kind, referenced: Option<&str>| Task::Restore {
            object: object(table, name, kind, referenced),
            loaded: LoadedEnds::default(),
        };
        let fk = |table, name, referenced| restore(table, name, ForeignKey, Some(referenced));
        let analyze = |table: &str| Task::Analyze(table.into());
        let mut locks = order(vec![], &["events", "users", "tags"], true);
        let running = |order: &mut RebuildOrder, task: &Task| order.running = vec![task.locks().0];

        running(
            &mut locks,
            &restore("users", "users_pkey", Constraint, None),
        );
        assert!(!locks.free_to_run(&restore("users", "users_email_key", Constraint, None)));
        assert!(!locks.free_to_run(&restore("users", "users_name", Index, None)));
        assert!(locks.free_to_run(&restore("events", "events_at", Index, None)));

        running(&mut locks, &restore("events", "events_at", Index, None));
        assert!(locks.free_to_run(&restore("events", "events_kind", Index, None)));
        assert!(!locks.free_to_run(&analyze("events")));

        running(&mut locks, &fk("events", "events_user_fk", "users"));
        assert!(
            !locks.free_to_run(&fk("events", "events_tag_fk", "tags")),
            "one validation of a table at a time"
        );
        assert!(
            locks.free_to_run(&fk("tags", "tags_user_fk", "users")),
            "foreign keys of other tables to the same table side by side"
        );
        assert!(
            locks.free_to_run(&analyze("users")),
            "the referenced table is only read"
        );
        assert!(!locks.free_to_run(&analyze("events")));

        running(&mut locks, &analyze("users"));
        assert!(
            !locks.free_to_run(&fk("tags", "tags_user_fk", "users")),
            "adding a foreign key to a table being analyzed would wait"
        );
        assert!(locks.free_to_run(&fk("events", "events_tag_fk", "tags")));

        running(&mut locks, &fk("users", "users_self_fk", "users"));
        assert!(!locks.free_to_run(&fk("tags", "tags_user_fk", "users")));

        // Through the order: the second key of a table waits for the first, the other
        // table's indexes go meanwhile, side by side.
        let objects = vec![
            object("users", "users_pkey", Constraint, None),
            object("users", "users_email_key", Constraint, None),
            object("events", "events_at", Index, None),
            object("events", "events_kind", Index, None),
        ];
        let mut order = order(objects, &["events", "users"], false);
        order.table_complete("events");
        order.table_complete("users");
        let mut held = vec![];
        while let Next::Run(task) = order.next() {
            held.push(task);
        }
        let names: Vec<_> = held.iter().map(take_name).collect();
        assert_eq!(names, ["users_pkey", "events_at", "events_kind"]);
        order.done(&held[0]);
        assert!(matches!(order.next(), Next::Run(task) if take_name(&task) == "users_email_key"));
    }

    #[test]
    fn a_referenced_table_is_vacuumed_once_keyed_and_before_its_foreign_keys() {
        let objects = || {
            vec![
                object("users", "users_pkey", Constraint, None),
                object("events", "events_user_fk", ForeignKey, Some("users")),
                object("users", "users_self_fk", ForeignKey, Some("users")),
                object("events", "events_outside_fk", ForeignKey, Some("outside")),
            ]
        };
        let mut order = order(objects(), &["events", "users"], true);
        order.table_complete("events");
        // It has no keys of its own to build: the foreign key outside the plan goes at once.
        assert_eq!(take(&mut order).as_deref(), Some("events_outside_fk"));
        assert_eq!(take(&mut order).as_deref(), Some("analyze events"));
        order.table_complete("users");
        let users_pkey = order.waiting[0].clone();
        assert_eq!(take(&mut order).as_deref(), Some("users_pkey"));
        assert_eq!(take(&mut order), None, "users is not keyed yet");
        order.restored(&users_pkey);
        let Next::Run(vacuum) = order.next() else {
            panic!("a task")
        };
        assert!(
            matches!(&vacuum, Task::Vacuum(t) if t == "users"),
            "{vacuum:?}"
        );
        assert_eq!(
            take(&mut order),
            None,
            "both foreign keys wait for the vacuum, the analysis for its lock"
        );
        order.done(&vacuum);
        assert_eq!(take(&mut order).as_deref(), Some("events_user_fk"));
        assert_eq!(take(&mut order).as_deref(), Some("users_self_fk"));
        assert_eq!(take(&mut order).as_deref(), Some("analyze users"));
        assert_eq!(take(&mut order).as_deref(), Some("done"));

        // Without statistics (`reset`, on emptied tables) nothing is vacuumed.
        let mut order = super::tests::order(objects(), &["events", "users"], false);
        order.table_complete("events");
        order.table_complete("users");
        let users_pkey = order.waiting[0].clone();
        assert_eq!(take(&mut order).as_deref(), Some("users_pkey"));
        assert_eq!(take(&mut order).as_deref(), Some("events_outside_fk"));
        order.restored(&users_pkey);
        assert_eq!(take(&mut order).as_deref(), Some("events_user_fk"));
    }

    #[test]
    fn a_foreign_key_to_a_table_still_loading_waits_for_it() {
        let mut order = order(
            vec![
                object("users", "users_pkey", Constraint, None),
                object("events", "events_user_fk", ForeignKey, Some("users")),
            ],
            &["events", "users"],
            false,
        );
        order.table_complete("events");
        assert_eq!(take(&mut order), None, "users still loads");
        order.table_complete("users");
        let users_pkey = order.waiting[0].clone();
        assert_eq!(take(&mut order).as_deref(), Some("users_pkey"));
        order.restored(&users_pkey);
        assert_eq!(take(&mut order).as_deref(), Some("events_user_fk"));
    }

    #[test]
    fn a_foreign_key_to_or_from_a_table_outside_the_plan_waits_for_the_loaded_end_only() {
        // Named as the ledger names them (quoted where needed), the tables as the plan does.
        let mut order = order(
            vec![
                object("public.\"user\"", "user_pkey", Constraint, None),
                object(
                    "public.other",
                    "other_user_fk",
                    ForeignKey,
                    Some("public.\"user\""),
                ),
                object(
                    "public.\"user\"",
                    "user_org_fk",
                    ForeignKey,
                    Some("public.org"),
                ),
            ],
            &["\"public\".\"user\""],
            false,
        );
        order.table_complete("\"public\".\"user\"");
        let pkey = order.waiting[0].clone();
        assert_eq!(take(&mut order).as_deref(), Some("user_pkey"));
        assert_eq!(take(&mut order), None, "user's key is being built");
        order.restored(&pkey);
        let Next::Run(Task::Restore { object: fk, .. }) = order.next() else {
            panic!("a foreign key")
        };
        assert_eq!(fk.name, "other_user_fk");
        assert_eq!(
            fk.table, "public.other",
            "the ledger's name, to mark it restored"
        );
        assert_eq!(take(&mut order).as_deref(), Some("user_org_fk"));
        assert_eq!(take(&mut order).as_deref(), Some("done"));
    }

    #[test]
    fn a_foreign_key_knows_which_of_its_tables_this_run_loaded_and_analyzes() {
        let objects = || {
            vec![
                object(
                    "public.other",
                    "other_user_fk",
                    ForeignKey,
                    Some("public.user"),
                ),
                object("public.user", "user_org_fk", ForeignKey, Some("public.org")),
                object(
                    "public.user",
                    "user_self_fk",
                    ForeignKey,
                    Some("public.user"),
                ),
            ]
        };
        let loaded_ends = |analyzing: bool| {
            let mut order = order(objects(), &["public.user"], analyzing);
            order.table_complete("public.user");
            let mut ends = Vec::new();
            while let Next::Run(task) = order.next() {
                if let Task::Restore { object, loaded } = &task {
                    ends.push((object.name.clone(), loaded.own, loaded.referenced));
                }
                order.done(&task);
            }
            ends
        };
        let fk = |name: &str, own, referenced| (name.to_string(), own, referenced);
        assert_eq!(
            loaded_ends(true),
            [
                fk("other_user_fk", false, true),
                fk("user_org_fk", true, false),
                fk("user_self_fk", true, true)
            ]
        );
        assert!(
            loaded_ends(false)
                .iter()
                .all(|(_, own, referenced)| !own && !referenced),
            "reset: its tables are empty, nothing to vacuum"
        );
    }

    #[test]
    fn a_foreign_key_goes_back_unchecked_then_validated_unless_it_was_unchecked() {
        let mut fk = object("public.\"user\"", "FK_a b", ForeignKey, Some("public.org"));
        fk.restore = "ALTER TABLE public.\"user\" ADD CONSTRAINT \"FK_a b\" FOREIGN KEY (\"orgId\") REFERENCES org(id) ON DELETE SET NULL".into();
        assert_eq!(
            ForeignKeySteps::of(&fk),
            Some(ForeignKeySteps {
                drop_if_exists: "ALTER TABLE public.\"user\" DROP CONSTRAINT IF EXISTS \"FK_a b\""
                    .into(),
                add_unchecked: format!("{} NOT VALID", fk.restore),
                validate: "ALTER TABLE public.\"user\" VALIDATE CONSTRAINT \"FK_a b\"".into(),
            })
        );
        fk.restore.push_str(" NOT VALID");
        assert_eq!(ForeignKeySteps::of(&fk), None, "it goes back as it was");
        let mut key = object("public.org", "org_pkey", Constraint, None);
        key.restore = "ALTER TABLE public.org ADD CONSTRAINT org_pkey PRIMARY KEY (id)".into();
        assert_eq!(ForeignKeySteps::of(&key), None);
    }

    #[test]
    fn a_foreign_key_of_an_older_ledger_waits_for_every_key() {
        let mut order = order(
            vec![
                object("a", "a_pkey", Constraint, None),
                object("b", "b_fk", ForeignKey, None),
            ],
            &["a", "b"],
            false,
        );
        ["a", "b"].iter().for_each(|t| order.table_complete(t));
        let a_pkey = order.waiting[0].clone();
        assert_eq!(take(&mut order).as_deref(), Some("a_pkey"));
        assert_eq!(take(&mut order), None);
        order.restored(&a_pkey);
        assert_eq!(take(&mut order).as_deref(), Some("b_fk"));
    }

    #[test]
    fn a_failed_build_ends_the_order_for_every_session() {
        let mut order = order(
            vec![
                object("a", "a_pkey", Constraint, None),
                object("a", "a_fk", ForeignKey, Some("a")),
            ],
            &["a"],
            false,
        );
        order.table_complete("a");
        assert_eq!(take(&mut order).as_deref(), Some("a_pkey"));
        assert_eq!(take(&mut order), None);
        order.failed = true;
        assert_eq!(take(&mut order).as_deref(), Some("done"));
    }
}
