//! The ledger in the target, schema `pgclipper`: which plan is being loaded, one row per
//! chunk (the work queue: a writer claims a chunk by locking its row, and marks it loaded in
//! the transaction of its COPY), the constraints and indexes taken off for the load, and the
//! sequences as they were before pgclipper moved them. Every statement on the ledger is in
//! this file.

use tokio_postgres::{Client, GenericClient, Transaction};

use crate::error::{Error, Result};
use crate::plan::Plan;

/// Creates the ledger if missing. Several processes may start at once: the advisory lock
/// keeps them from racing on `CREATE ... IF NOT EXISTS`, which is not safe concurrently.
pub async fn ensure(client: &Client) -> Result<()> {
    client
        .batch_execute(
            "BEGIN;
             SELECT pg_advisory_xact_lock(hashtext('pgclipper'));
             CREATE SCHEMA IF NOT EXISTS pgclipper;
             CREATE TABLE IF NOT EXISTS pgclipper.plans (
                 plan_id      text        PRIMARY KEY,
                 fingerprint  text        NOT NULL,
                 created_at   timestamptz NOT NULL DEFAULT now(),
                 completed_at timestamptz
             );
             CREATE TABLE IF NOT EXISTS pgclipper.chunks (
                 plan_id      text        NOT NULL REFERENCES pgclipper.plans ON DELETE CASCADE,
                 table_name   text        NOT NULL,
                 chunk_id     integer     NOT NULL,
                 target_table text        NOT NULL,
                 rows         bigint,
                 checksum     text,
                 loaded_at    timestamptz,
                 PRIMARY KEY (plan_id, table_name, chunk_id)
             );
             CREATE TABLE IF NOT EXISTS pgclipper.deferred_constraints (
                 plan_id     text NOT NULL REFERENCES pgclipper.plans ON DELETE CASCADE,
                 table_name  text NOT NULL,
                 object_name text NOT NULL,
                 kind        text NOT NULL CHECK (kind IN ('foreign', 'constraint', 'index')),
                 restore_sql text NOT NULL,
                 PRIMARY KEY (plan_id, table_name, object_name)
             );
             -- The table a foreign key references (its keys must be back before it is).
             ALTER TABLE pgclipper.deferred_constraints ADD COLUMN IF NOT EXISTS referenced_table text;
             -- Set when the object is back: the record stays, for `verify` to compare with.
             ALTER TABLE pgclipper.deferred_constraints ADD COLUMN IF NOT EXISTS restored_at timestamptz;
             -- The run (pgclipper's run id, in its logs and report.json) that loaded a chunk.
             ALTER TABLE pgclipper.chunks ADD COLUMN IF NOT EXISTS loaded_by text;
             ALTER TABLE pgclipper.chunks ADD COLUMN IF NOT EXISTS bytes bigint;
             -- Every run that loaded into a plan: who and where, for `status`.
             CREATE TABLE IF NOT EXISTS pgclipper.runs (
                 run_id     text        PRIMARY KEY,
                 plan_id    text        NOT NULL REFERENCES pgclipper.plans ON DELETE CASCADE,
                 command    text        NOT NULL,
                 host       text        NOT NULL,
                 pid        integer     NOT NULL,
                 started_at timestamptz NOT NULL DEFAULT now()
             );
             CREATE TABLE IF NOT EXISTS pgclipper.sequences (
                 plan_id       text    NOT NULL REFERENCES pgclipper.plans ON DELETE CASCADE,
                 sequence_name text    NOT NULL,
                 last_value    bigint  NOT NULL,
                 is_called     boolean NOT NULL,
                 PRIMARY KEY (plan_id, sequence_name)
             );
             -- Each loaded table's own autovacuum setting (its and its TOAST table's
             -- autovacuum_enabled, as reloptions entries), held off during the load.
             CREATE TABLE IF NOT EXISTS pgclipper.autovacuum (
                 plan_id    text        NOT NULL REFERENCES pgclipper.plans ON DELETE CASCADE,
                 table_name text        NOT NULL,
                 options    text[]      NOT NULL,
                 given_back_at timestamptz,
                 PRIMARY KEY (plan_id, table_name)
             );
             COMMIT;",
        )
        .await
        .map_err(Error::postgres("creating the pgclipper ledger"))
}

/// Takes the session-level lock that lets one process at a time register or finish a plan.
pub async fn lock(client: &Client) -> Result<()> {
    client
        .execute("SELECT pg_advisory_lock(hashtext('pgclipper'))", &[])
        .await
        .map_err(Error::postgres("taking the pgclipper lock"))?;
    Ok(())
}

pub async fn unlock(client: &Client) -> Result<()> {
    client
        .execute("SELECT pg_advisory_unlock(hashtext('pgclipper'))", &[])
        .await
        .map_err(Error::postgres("releasing the pgclipper lock"))?;
    Ok(())
}

/// Records a new plan and one unloaded row per chunk, in the caller's transaction.
pub async fn register_plan(tx: &Transaction<'_>, plan: &Plan, fingerprint: &str) -> Result<()> {
    let context = "recording the plan in the ledger";
    tx.execute(
        "INSERT INTO pgclipper.plans (plan_id, fingerprint) VALUES ($1, $2)",
        &[&plan.plan_id, &fingerprint],
    )
    .await
    .map_err(Error::postgres(context))?;
    let (mut tables, mut ids, mut targets) = (Vec::new(), Vec::new(), Vec::new());
    for table in &plan.tables {
        for chunk in &table.chunks {
            tables.push(table.name.clone());
            ids.push(chunk.id as i32);
            targets.push(table.target.clone());
        }
    }
    tx.execute(
        "INSERT INTO pgclipper.chunks (plan_id, table_name, chunk_id, target_table)
         SELECT $1, * FROM unnest($2::text[], $3::int[], $4::text[])",
        &[&plan.plan_id, &tables, &ids, &targets],
    )
    .await
    .map_err(Error::postgres(context))?;
    Ok(())
}

/// The fingerprint recorded with `plan_id`, if the target knows the plan.
pub async fn plan_fingerprint(client: &Client, plan_id: &str) -> Result<Option<String>> {
    let exists = client
        .query_one("SELECT to_regclass('pgclipper.plans') IS NOT NULL", &[])
        .await
        .map_err(Error::postgres("reading the ledger"))?;
    if !exists.get::<_, bool>(0) {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT fingerprint FROM pgclipper.plans WHERE plan_id = $1",
            &[&plan_id],
        )
        .await
        .map_err(Error::postgres("reading the ledger"))?;
    Ok(row.map(|r| r.get(0)))
}

/// `(table, chunk)` of every chunk of the plan already loaded.
pub async fn loaded_chunks(client: &Client, plan_id: &str) -> Result<Vec<(String, u32)>> {
    let rows = client
        .query(
            "SELECT table_name, chunk_id FROM pgclipper.chunks WHERE plan_id = $1 AND loaded_at IS NOT NULL",
            &[&plan_id],
        )
        .await
        .map_err(Error::postgres("reading the ledger"))?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get::<_, i32>(1) as u32))
        .collect())
}

/// How a writer's claim on a chunk turned out.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The chunk's row is locked by this transaction: load it.
    Mine,
    /// Another process holds it right now, or it is loaded already: leave it.
    Taken,
}

/// Claims one given chunk inside `tx`: its row stays locked until the transaction ends, so
/// no other process can load it meanwhile, and a process that dies releases it.
pub async fn claim(
    tx: &Transaction<'_>,
    plan_id: &str,
    table: &str,
    chunk_id: u32,
) -> Result<Claim> {
    let row = tx
        .query_opt(
            "SELECT loaded_at IS NULL FROM pgclipper.chunks
             WHERE plan_id = $1 AND table_name = $2 AND chunk_id = $3
             FOR UPDATE SKIP LOCKED",
            &[&plan_id, &table, &(chunk_id as i32)],
        )
        .await
        .map_err(Error::postgres("claiming a chunk"))?;
    Ok(match row {
        Some(r) if r.get::<_, bool>(0) => Claim::Mine,
        _ => Claim::Taken,
    })
}

/// Claims any unloaded chunk not held by another process; `None` when there is none.
pub async fn claim_next(tx: &Transaction<'_>, plan_id: &str) -> Result<Option<(String, u32)>> {
    let row = tx
        .query_opt(
            "SELECT table_name, chunk_id FROM pgclipper.chunks
             WHERE plan_id = $1 AND loaded_at IS NULL
             ORDER BY table_name, chunk_id
             LIMIT 1 FOR UPDATE SKIP LOCKED",
            &[&plan_id],
        )
        .await
        .map_err(Error::postgres("claiming a chunk"))?;
    Ok(row.map(|r| (r.get(0), r.get::<_, i32>(1) as u32)))
}

/// Chunks of the plan not loaded yet, claimed by someone or not.
pub async fn unloaded_count(client: &Client, plan_id: &str) -> Result<i64> {
    let row = client
        .query_one(
            "SELECT count(*) FROM pgclipper.chunks WHERE plan_id = $1 AND loaded_at IS NULL",
            &[&plan_id],
        )
        .await
        .map_err(Error::postgres("reading the ledger"))?;
    Ok(row.get(0))
}

/// Marks a claimed chunk loaded, in the transaction of its COPY.
pub async fn mark_loaded(
    tx: &Transaction<'_>,
    plan_id: &str,
    chunk: &crate::encode::FinishedChunk,
) -> Result<()> {
    tx.execute(
        "UPDATE pgclipper.chunks
         SET rows = $4, checksum = $5, loaded_at = now(), loaded_by = $6, bytes = $7
         WHERE plan_id = $1 AND table_name = $2 AND chunk_id = $3",
        &[
            &plan_id,
            &chunk.table,
            &(chunk.chunk_id as i32),
            &(chunk.rows as i64),
            &format!("{:016x}", chunk.checksum),
            &crate::report::run_id(),
            &(chunk.bytes as i64),
        ],
    )
    .await
    .map_err(Error::postgres("recording a loaded chunk"))?;
    Ok(())
}

/// This run, as one that loads into `plan_id`.
pub async fn record_run(client: &Client, plan_id: &str, command: &str) -> Result<()> {
    client
        .execute(
            "INSERT INTO pgclipper.runs (run_id, plan_id, command, host, pid)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (run_id) DO NOTHING",
            &[
                &crate::report::run_id(),
                &plan_id,
                &command,
                &crate::report::host_name(),
                &(std::process::id() as i32),
            ],
        )
        .await
        .map_err(Error::postgres("recording the run in the ledger"))?;
    Ok(())
}

pub async fn mark_completed(client: &Client, plan_id: &str) -> Result<()> {
    client
        .execute(
            "UPDATE pgclipper.plans SET completed_at = now() WHERE plan_id = $1",
            &[&plan_id],
        )
        .await
        .map_err(Error::postgres("recording the completed plan"))?;
    Ok(())
}

/// Forgets a plan: its chunks, deferred constraints and saved sequences go with it.
pub async fn forget_plan(client: &Client, plan_id: &str) -> Result<()> {
    client
        .execute(
            "DELETE FROM pgclipper.plans WHERE plan_id = $1",
            &[&plan_id],
        )
        .await
        .map_err(Error::postgres("clearing the ledger"))?;
    Ok(())
}

/// When the plan's last steps (indexes, foreign keys, sequences, statistics) were done, if
/// they were.
pub async fn completed_at(client: &Client, plan_id: &str) -> Result<Option<String>> {
    let row = client
        .query_one(
            "SELECT to_char(completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"')
             FROM pgclipper.plans WHERE plan_id = $1",
            &[&plan_id],
        )
        .await
        .map_err(Error::postgres("reading the ledger"))?;
    Ok(row.get(0))
}

/// What the ledger holds for a plan that `reset` puts back.
#[derive(Debug, Default, Clone, Copy)]
pub struct Saved {
    /// Taken off for the load and not back yet, by kind.
    pub foreign_keys: i64,
    pub constraints: i64,
    pub indexes: i64,
    /// Sequences moved, with their state before.
    pub sequences: i64,
}

pub async fn saved(client: &Client, plan_id: &str) -> Result<Saved> {
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE kind = 'foreign'),
                    count(*) FILTER (WHERE kind = 'constraint'),
                    count(*) FILTER (WHERE kind = 'index'),
                    (SELECT count(*) FROM pgclipper.sequences WHERE plan_id = $1)
             FROM pgclipper.deferred_constraints WHERE plan_id = $1 AND restored_at IS NULL",
            &[&plan_id],
        )
        .await
        .map_err(Error::postgres("reading the ledger"))?;
    Ok(Saved {
        foreign_keys: row.get(0),
        constraints: row.get(1),
        indexes: row.get(2),
        sequences: row.get(3),
    })
}

/// What a deferred object is; stored as text in `deferred_constraints.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    ForeignKey,
    /// A primary key, unique or exclusion constraint (with the index behind it).
    Constraint,
    /// An index that backs no constraint.
    Index,
}

impl ObjectKind {
    fn as_str(self) -> &'static str {
        match self {
            ObjectKind::ForeignKey => "foreign",
            ObjectKind::Constraint => "constraint",
            ObjectKind::Index => "index",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "foreign" => ObjectKind::ForeignKey,
            "constraint" => ObjectKind::Constraint,
            "index" => ObjectKind::Index,
            other => {
                return Err(Error::Data(format!(
                    "the ledger records a deferred object of unknown kind {other:?}"
                )))
            }
        })
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectKind::ForeignKey => "foreign key",
            ObjectKind::Constraint => "constraint",
            ObjectKind::Index => "index",
        })
    }
}

/// One object taken off for the load, as the ledger records it.
#[derive(Debug, Clone)]
pub struct DeferredObject {
    /// The qualified table it belongs to.
    pub table: String,
    pub name: String,
    pub kind: ObjectKind,
    /// The statement that re-creates it.
    pub restore: String,
    /// For a foreign key, the table it references (`None` in ledgers of older versions).
    pub referenced: Option<String>,
}

/// Records an object about to be dropped, in the transaction that drops it.
pub async fn record_deferred(
    tx: &Transaction<'_>,
    plan_id: &str,
    object: &DeferredObject,
) -> Result<()> {
    tx.execute(
        "INSERT INTO pgclipper.deferred_constraints
             (plan_id, table_name, object_name, kind, restore_sql, referenced_table)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &plan_id,
            &object.table,
            &object.name,
            &object.kind.as_str(),
            &object.restore,
            &object.referenced,
        ],
    )
    .await
    .map_err(Error::postgres("recording a deferred object"))?;
    Ok(())
}

/// The plan's objects still deferred: keys and indexes first, largest table first (the
/// longest builds start early), then foreign keys.
pub async fn deferred_objects(client: &Client, plan_id: &str) -> Result<Vec<DeferredObject>> {
    objects(client, plan_id, "AND restored_at IS NULL", &[]).await
}

/// Every object the plan took off, restored or not, as recorded before the load.
pub async fn recorded_objects(client: &Client, plan_id: &str) -> Result<Vec<DeferredObject>> {
    objects(client, plan_id, "", &[]).await
}

/// The plan's objects that `only` (SQL after the plan's condition, its parameters from $2
/// on: `more`) selects.
async fn objects(
    client: &impl GenericClient,
    plan_id: &str,
    only: &str,
    more: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<DeferredObject>> {
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = std::iter::once(&plan_id as _)
        .chain(more.iter().copied())
        .collect();
    let rows = client
        .query(
            &format!(
                "SELECT table_name, object_name, kind, restore_sql, referenced_table
             FROM pgclipper.deferred_constraints
             WHERE plan_id = $1 {only}
             ORDER BY kind = 'foreign',
                      pg_total_relation_size(to_regclass(table_name)) DESC NULLS LAST,
                      table_name, object_name"
            ),
            &params,
        )
        .await
        .map_err(Error::postgres("reading deferred constraints and indexes"))?;
    rows.iter()
        .map(|r| {
            Ok(DeferredObject {
                table: r.get(0),
                name: r.get(1),
                kind: ObjectKind::parse(r.get(2))?,
                restore: r.get(3),
                referenced: r.get(4),
            })
        })
        .collect()
}

/// The foreign keys from tables outside `tables` (qualified) that the plan took off and
/// has put back.
pub async fn restored_foreign_keys_from(
    tx: &Transaction<'_>,
    plan_id: &str,
    tables: &[String],
) -> Result<Vec<DeferredObject>> {
    let only = "AND kind = 'foreign' AND restored_at IS NOT NULL
                AND to_regclass(table_name) <> ALL ($2::text[]::regclass[])";
    objects(tx, plan_id, only, &[&tables]).await
}

/// Marks a restored object as taken off again, in the transaction that drops it.
pub async fn unrestored(
    tx: &Transaction<'_>,
    plan_id: &str,
    object: &DeferredObject,
) -> Result<()> {
    tx.execute(
        "UPDATE pgclipper.deferred_constraints SET restored_at = NULL
         WHERE plan_id = $1 AND table_name = $2 AND object_name = $3",
        &[&plan_id, &object.table, &object.name],
    )
    .await
    .map_err(Error::postgres("recording an object taken off again"))?;
    Ok(())
}

/// Marks an object restored, in the transaction that re-created it (its record stays).
pub async fn restored(tx: &Transaction<'_>, plan_id: &str, object: &DeferredObject) -> Result<()> {
    tx.execute(
        "UPDATE pgclipper.deferred_constraints SET restored_at = now()
         WHERE plan_id = $1 AND table_name = $2 AND object_name = $3",
        &[&plan_id, &object.table, &object.name],
    )
    .await
    .map_err(Error::postgres("recording a restored object"))?;
    Ok(())
}

/// A sequence's state.
#[derive(Debug, Clone)]
pub struct SequenceState {
    pub name: String,
    pub last_value: i64,
    pub is_called: bool,
}

/// Saves a sequence's state before the plan moves it; a resumed run keeps the first saved.
pub async fn save_sequence(
    client: &impl GenericClient,
    plan_id: &str,
    state: &SequenceState,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO pgclipper.sequences (plan_id, sequence_name, last_value, is_called)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&plan_id, &state.name, &state.last_value, &state.is_called],
        )
        .await
        .map_err(Error::postgres("saving a sequence's state"))?;
    Ok(())
}

/// Every sequence the plan moved, as it was before.
pub async fn saved_sequences(client: &Client, plan_id: &str) -> Result<Vec<SequenceState>> {
    let rows = client
        .query(
            "SELECT sequence_name, last_value, is_called FROM pgclipper.sequences WHERE plan_id = $1",
            &[&plan_id],
        )
        .await
        .map_err(Error::postgres("reading the saved sequences"))?;
    Ok(rows
        .iter()
        .map(|r| SequenceState {
            name: r.get(0),
            last_value: r.get(1),
            is_called: r.get(2),
        })
        .collect())
}

/// A table's own autovacuum setting before the load: its `reloptions` entries for
/// `autovacuum_enabled` (and `toast.autovacuum_enabled`), empty when it had none.
#[derive(Debug, Clone)]
pub struct AutovacuumSetting {
    /// Qualified, quoted where needed (a plan's table, or a leaf partition of one).
    pub table: String,
    pub options: Vec<String>,
}

/// Saves a table's autovacuum setting before the load holds it off; a resumed plan keeps
/// the first saved.
pub async fn save_autovacuum(
    tx: &Transaction<'_>,
    plan_id: &str,
    setting: &AutovacuumSetting,
) -> Result<()> {
    tx.execute(
        "INSERT INTO pgclipper.autovacuum (plan_id, table_name, options)
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        &[&plan_id, &setting.table, &setting.options],
    )
    .await
    .map_err(Error::postgres("saving a table's autovacuum setting"))?;
    Ok(())
}

/// The tables whose autovacuum setting is still held off by the plan.
pub async fn held_autovacuum(client: &Client, plan_id: &str) -> Result<Vec<AutovacuumSetting>> {
    let rows = client
        .query(
            "SELECT table_name, options FROM pgclipper.autovacuum
             WHERE plan_id = $1 AND given_back_at IS NULL ORDER BY table_name",
            &[&plan_id],
        )
        .await
        .map_err(Error::postgres("reading the saved autovacuum settings"))?;
    Ok(rows
        .iter()
        .map(|r| AutovacuumSetting {
            table: r.get(0),
            options: r.get(1),
        })
        .collect())
}

/// Marks a table's autovacuum setting given back, in the transaction that gave it back.
pub async fn autovacuum_given_back(tx: &Transaction<'_>, plan_id: &str, table: &str) -> Result<()> {
    tx.execute(
        "UPDATE pgclipper.autovacuum SET given_back_at = now() WHERE plan_id = $1 AND table_name = $2",
        &[&plan_id, &table],
    )
    .await
    .map_err(Error::postgres("recording a table's autovacuum setting given back"))?;
    Ok(())
}
