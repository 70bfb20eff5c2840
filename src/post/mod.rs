//! Around the load: foreign keys, unique constraints and secondary indexes taken off before
//! it and put back after it (recorded in the ledger meanwhile); every sequence owned by a
//! loaded column set past the column's maximum, so the application's next insert does not
//! collide with a copied row.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio_postgres::Client;

use crate::catalog::pg_ident;
use crate::config::DbUrl;
use crate::error::{Error, Result};
use crate::sink;

/// Sets each owned sequence (serial or identity) of `qualified` to its column's max.
/// The sequence's state before is saved in the ledger first (once: a resumed run keeps the
/// original), so `reset` can put it back. Returns how many sequences moved.
pub async fn advance_sequences(client: &Client, plan_id: &str, qualified: &str) -> Result<usize> {
    let context = format!("advancing the sequences of {qualified}");
    let owned = client
        .query(
            "SELECT a.attname::text, pg_get_serial_sequence($1::text, a.attname)
             FROM pg_attribute a
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
               AND pg_get_serial_sequence($1::text, a.attname) IS NOT NULL",
            &[&qualified],
        )
        .await
        .map_err(Error::target(&context))?;
    let mut moved = 0;
    for row in owned {
        let column: String = row.get(0);
        let sequence: String = row.get(1);
        let state = client
            .query_one(
                &format!("SELECT last_value, is_called FROM {sequence}"),
                &[],
            )
            .await
            .map_err(Error::target(&context))?;
        client
            .execute(
                "INSERT INTO pgferry.sequences (plan_id, sequence_name, last_value, is_called)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[
                    &plan_id,
                    &sequence,
                    &state.get::<_, i64>(0),
                    &state.get::<_, bool>(1),
                ],
            )
            .await
            .map_err(Error::target(&context))?;
        let max = client
            .query_one(
                &format!("SELECT max({})::bigint FROM {qualified}", pg_ident(&column)),
                &[],
            )
            .await
            .map_err(Error::target(&context))?;
        if let Some(max) = max.get::<_, Option<i64>>(0) {
            client
                .execute(
                    "SELECT setval($1::text::regclass, $2, true)",
                    &[&sequence, &max],
                )
                .await
                .map_err(Error::target(&context))?;
            moved += 1;
        }
    }
    Ok(moved)
}

/// Puts every sequence the plan moved back where it was. Returns how many.
pub async fn restore_sequences(client: &Client, plan_id: &str) -> Result<usize> {
    let context = "restoring sequences";
    let rows = client
        .query(
            "SELECT sequence_name, last_value, is_called FROM pgferry.sequences WHERE plan_id = $1",
            &[&plan_id],
        )
        .await
        .map_err(Error::target(context))?;
    for row in &rows {
        let (sequence, last, called): (String, i64, bool) = (row.get(0), row.get(1), row.get(2));
        client
            .execute(
                "SELECT setval($1::text::regclass, $2, $3)",
                &[&sequence, &last, &called],
            )
            .await
            .map_err(Error::target(context))?;
    }
    Ok(rows.len())
}

/// What [`defer_objects`] took off.
#[derive(Debug, Default, Clone, Copy)]
pub struct Deferred {
    pub foreign_keys: usize,
    pub constraints: usize,
    pub indexes: usize,
}

/// Takes off, for the load, every foreign key from or to `tables` (qualified names), and
/// their unique and exclusion constraints and secondary indexes (primary keys stay): chunks
/// then load in any order, and each index is built once from all rows instead of row by row.
/// Every object's re-creating statement goes into the ledger in the caller's transaction
/// (the one that records the plan), with its drop, so a crash can never lose one. [`restore_deferred`] puts them back.
pub async fn defer_objects(
    tx: &tokio_postgres::Transaction<'_>,
    plan_id: &str,
    tables: &[String],
) -> Result<Deferred> {
    let context = "deferring constraints and indexes";
    // (table, object, kind, statement that re-creates it, statement that drops it)
    let mut objects: Vec<(String, String, &str, String, String)> = Vec::new();
    let constraints = tx
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname), con.conname::text, con.contype::text,
                    pg_get_constraintdef(con.oid)
             FROM pg_constraint con
             JOIN pg_class c ON c.oid = con.conrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE (con.contype = 'f'
                    AND (con.conrelid = ANY($1::text[]::regclass[]) OR con.confrelid = ANY($1::text[]::regclass[])))
                OR (con.contype IN ('u', 'x') AND con.conrelid = ANY($1::text[]::regclass[]))
             ORDER BY con.contype = 'f' DESC, 1, 2",
            &[&tables],
        )
        .await
        .map_err(Error::target(context))?;
    for row in &constraints {
        let (table, name, kind, definition): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let name_sql = pg_ident(&name);
        objects.push((
            table.clone(),
            name,
            if kind == "f" { "foreign" } else { "constraint" },
            format!("ALTER TABLE {table} ADD CONSTRAINT {name_sql} {definition}"),
            format!("ALTER TABLE {table} DROP CONSTRAINT {name_sql}"),
        ));
    }
    // Indexes that back no constraint (those go with their constraint, the primary key stays).
    let indexes = tx
        .query(
            "SELECT format('%I.%I', tn.nspname, t.relname), format('%I.%I', n.nspname, ic.relname),
                    pg_get_indexdef(i.indexrelid)
             FROM pg_index i
             JOIN pg_class ic ON ic.oid = i.indexrelid
             JOIN pg_namespace n ON n.oid = ic.relnamespace
             JOIN pg_class t ON t.oid = i.indrelid
             JOIN pg_namespace tn ON tn.oid = t.relnamespace
             WHERE i.indrelid = ANY($1::text[]::regclass[])
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
             ORDER BY 1, 2",
            &[&tables],
        )
        .await
        .map_err(Error::target(context))?;
    for row in &indexes {
        let (table, index, definition): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        objects.push((
            table,
            index.clone(),
            "index",
            definition,
            format!("DROP INDEX {index}"),
        ));
    }
    let mut deferred = Deferred::default();
    for (table, name, kind, restore, drop) in &objects {
        tx.execute(
            "INSERT INTO pgferry.deferred_constraints (plan_id, table_name, object_name, kind, restore_sql)
             VALUES ($1, $2, $3, $4, $5)",
            &[&plan_id, table, name, kind, restore],
        )
        .await
        .map_err(Error::target(context))?;
        tx.batch_execute(drop)
            .await
            .map_err(Error::target(context))?;
        match *kind {
            "foreign" => deferred.foreign_keys += 1,
            "constraint" => deferred.constraints += 1,
            _ => deferred.indexes += 1,
        }
    }
    Ok(deferred)
}

/// Re-creates every object [`defer_objects`] took off for `plan_id`: indexes and unique
/// constraints first, on up to `sessions` connections at once with a large
/// `maintenance_work_mem`, then the foreign keys (Postgres validates the loaded rows as it
/// adds each). Each object leaves the ledger in the transaction that re-creates it.
/// Returns how many objects were restored.
pub async fn restore_deferred(url: &DbUrl, plan_id: &str, sessions: usize) -> Result<usize> {
    let client = sink::connect(url).await?;
    let rows = client
        .query(
            "SELECT table_name, object_name, kind, restore_sql FROM pgferry.deferred_constraints
             WHERE plan_id = $1 ORDER BY kind = 'foreign', table_name, object_name",
            &[&plan_id],
        )
        .await
        .map_err(Error::target("reading deferred constraints and indexes"))?;
    let all: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let (foreign, first): (Vec<_>, Vec<_>) = all.into_iter().partition(|o| o.2 == "foreign");
    let mut restored = 0;
    for phase in [first, foreign] {
        restored += phase.len();
        let queue = Arc::new(Mutex::new(VecDeque::from(phase)));
        let mut workers = Vec::new();
        for _ in 0..sessions.max(1) {
            let (queue, url, plan_id) = (queue.clone(), url.clone(), plan_id.to_string());
            workers.push(tokio::spawn(async move {
                let mut client = sink::connect(&url).await?;
                client
                    .batch_execute("SET maintenance_work_mem = '1GB'")
                    .await
                    .map_err(Error::target("raising maintenance_work_mem"))?;
                loop {
                    let Some((table, name, kind, restore)) = queue.lock().expect("queue lock").pop_front() else {
                        return Ok::<(), Error>(());
                    };
                    let context = format!("restoring {kind} {name} on {table}");
                    let tx = client.transaction().await.map_err(Error::target(&context))?;
                    tx.batch_execute(&restore).await.map_err(Error::target(&context))?;
                    tx.execute(
                        "DELETE FROM pgferry.deferred_constraints WHERE plan_id = $1 AND table_name = $2 AND object_name = $3",
                        &[&plan_id, &table, &name],
                    )
                    .await
                    .map_err(Error::target(&context))?;
                    tx.commit().await.map_err(Error::target(&context))?;
                }
            }));
        }
        for worker in workers {
            worker
                .await
                .map_err(|e| Error::Environment(format!("a restoring session panicked: {e}")))??;
        }
    }
    Ok(restored)
}
