//! Autovacuum held off the loaded tables until their rebuild is done. A table that has just
//! received its rows passes autovacuum's insert threshold at once; a worker then scans it
//! beside the load and holds a lock that each key build, foreign key and ANALYZE of the
//! table waits for, a second each time, until Postgres cancels the worker
//! (`deadlock_timeout`): on Alkemio's rows, 24 such cancellations in one run, and the
//! vacuum's scans of the 1 GB authorization_policy begun and lost again. Each table's own
//! setting is saved in the ledger in the transaction that changes it, and put back once
//! the rebuild is done, or by `reset`; the autovacuum that follows then runs once, on
//! complete tables.

use tokio_postgres::{Client, Transaction};

use crate::error::{Error, Result};
use crate::sink::ledger::{self, AutovacuumSetting};

/// Turns autovacuum off on `tables` (qualified names) and their TOAST tables, saving each
/// table's setting first (once: a resumed plan keeps the original). A partitioned table
/// has no storage of its own: its leaf partitions are the tables autovacuum works on.
/// Returns how many.
pub async fn hold_off(tx: &Transaction<'_>, plan_id: &str, tables: &[String]) -> Result<usize> {
    let context = "holding autovacuum off the loaded tables";
    let settings = tx
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname),
                    array(SELECT o FROM unnest(c.reloptions) o WHERE o LIKE 'autovacuum\\_enabled=%')
                 || array(SELECT 'toast.' || o FROM unnest(tc.reloptions) o WHERE o LIKE 'autovacuum\\_enabled=%')
             FROM unnest($1::text[]) t(name)
             CROSS JOIN LATERAL (SELECT t.name::regclass
                                 UNION SELECT relid FROM pg_partition_tree(t.name::regclass)) p(relid)
             JOIN pg_class c ON c.oid = p.relid AND c.relkind = 'r'
             JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_class tc ON tc.oid = c.reltoastrelid
             ORDER BY 1",
            &[&tables],
        )
        .await
        .map_err(Error::postgres(context))?;
    for row in &settings {
        let setting = AutovacuumSetting {
            table: row.get(0),
            options: row.get(1),
        };
        ledger::save_autovacuum(tx, plan_id, &setting).await?;
        tx.batch_execute(&format!(
            "ALTER TABLE {} SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)",
            setting.table
        ))
        .await
        .map_err(Error::postgres(context))?;
    }
    Ok(settings.len())
}

/// Gives every table [`hold_off`] changed its own autovacuum setting back. Returns how many.
pub async fn put_back(client: &mut Client, plan_id: &str) -> Result<usize> {
    let context = "giving the loaded tables their autovacuum setting back";
    let held = ledger::held_autovacuum(client, plan_id).await?;
    for setting in &held {
        let mut sql = format!(
            "ALTER TABLE {} RESET (autovacuum_enabled, toast.autovacuum_enabled)",
            setting.table
        );
        if !setting.options.is_empty() {
            sql.push_str(&format!(
                "; ALTER TABLE {} SET ({})",
                setting.table,
                setting.options.join(", ")
            ));
        }
        let tx = client
            .transaction()
            .await
            .map_err(Error::postgres(context))?;
        tx.batch_execute(&sql)
            .await
            .map_err(Error::postgres(context))?;
        ledger::autovacuum_given_back(&tx, plan_id, &setting.table).await?;
        tx.commit().await.map_err(Error::postgres(context))?;
    }
    Ok(held.len())
}
