//! After the load: every sequence owned by a loaded column is set past the column's
//! maximum, so the application's next insert does not collide with a copied row.

use tokio_postgres::Client;

use crate::catalog::pg_ident;
use crate::error::{Error, Result};

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

/// A foreign key taken off for the load, as the ledger records it.
#[derive(Debug, Clone)]
pub struct DeferredConstraint {
    pub table: String,
    pub name: String,
    pub definition: String,
}

/// Records, then drops, every foreign key from or to `tables` (qualified names), so chunks
/// can load in any order. Recorded first and in the same transaction: a crash can never
/// lose a definition. [`restore_constraints`] puts them back.
pub async fn defer_foreign_keys(
    client: &mut Client,
    plan_id: &str,
    tables: &[String],
) -> Result<usize> {
    let context = "deferring foreign keys";
    let tx = client.transaction().await.map_err(Error::target(context))?;
    let rows = tx
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname), con.conname::text, pg_get_constraintdef(con.oid)
             FROM pg_constraint con
             JOIN pg_class c ON c.oid = con.conrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE con.contype = 'f'
               AND (con.conrelid = ANY($1::text[]::regclass[]) OR con.confrelid = ANY($1::text[]::regclass[]))
             ORDER BY 1, 2",
            &[&tables],
        )
        .await
        .map_err(Error::target(context))?;
    for row in &rows {
        let (table, name, definition): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        tx.execute(
            "INSERT INTO pgferry.deferred_constraints (plan_id, table_name, constraint_name, definition)
             VALUES ($1, $2, $3, $4)",
            &[&plan_id, &table, &name, &definition],
        )
        .await
        .map_err(Error::target(context))?;
        tx.batch_execute(&format!(
            "ALTER TABLE {table} DROP CONSTRAINT {}",
            pg_ident(&name)
        ))
        .await
        .map_err(Error::target(context))?;
    }
    tx.commit().await.map_err(Error::target(context))?;
    Ok(rows.len())
}

/// Re-creates every deferred foreign key of `plan_id` (Postgres validates the loaded rows
/// as it does) and clears it from the ledger. Returns how many were restored.
pub async fn restore_constraints(client: &mut Client, plan_id: &str) -> Result<usize> {
    let rows = client
        .query(
            "SELECT table_name, constraint_name, definition FROM pgferry.deferred_constraints
             WHERE plan_id = $1 ORDER BY table_name, constraint_name",
            &[&plan_id],
        )
        .await
        .map_err(Error::target("reading deferred foreign keys"))?;
    for row in &rows {
        let c = DeferredConstraint {
            table: row.get(0),
            name: row.get(1),
            definition: row.get(2),
        };
        let context = format!("restoring foreign key {} on {}", c.name, c.table);
        let tx = client
            .transaction()
            .await
            .map_err(Error::target(&context))?;
        tx.batch_execute(&format!(
            "ALTER TABLE {} ADD CONSTRAINT {} {}",
            c.table,
            pg_ident(&c.name),
            c.definition
        ))
        .await
        .map_err(Error::target(&context))?;
        tx.execute(
            "DELETE FROM pgferry.deferred_constraints WHERE plan_id = $1 AND table_name = $2 AND constraint_name = $3",
            &[&plan_id, &c.table, &c.name],
        )
        .await
        .map_err(Error::target(&context))?;
        tx.commit().await.map_err(Error::target(&context))?;
    }
    Ok(rows.len())
}
