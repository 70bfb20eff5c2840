//! Keys, constraints, indexes and foreign keys taken off the loaded tables before the load
//! ([`super::rebuild`] puts them back): chunks then load in any order, and each index is
//! built once from all rows instead of row by row (primary-key inserts, a random uuid key
//! above all, were a quarter of Postgres' work during the load). Duplicate keys cannot arise
//! from the load (the ledger loads each chunk once), and would still be refused when the key
//! is put back.

use tokio_postgres::Transaction;

use crate::catalog::pg_ident;
use crate::error::{Error, Result};
use crate::sink::{ledger, DeferredObject, ObjectKind};

/// What [`defer_objects`] took off.
#[derive(Debug, Default, Clone, Copy)]
pub struct Deferred {
    pub foreign_keys: usize,
    pub constraints: usize,
    pub indexes: usize,
}

/// Takes off, for the load, every foreign key from or to `tables` (qualified names), and
/// their primary keys, unique and exclusion constraints and secondary indexes. Every
/// object's re-creating statement goes into the ledger in the caller's transaction (the
/// one that records the plan), with its drop, so a crash can never lose one.
/// [`super::rebuild::Rebuild`] puts them back.
pub async fn defer_objects(
    tx: &Transaction<'_>,
    plan_id: &str,
    tables: &[String],
) -> Result<Deferred> {
    let context = "deferring constraints and indexes";
    let mut objects: Vec<(DeferredObject, String)> = Vec::new(); // with the dropping statement
    let constraints = tx
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname), con.conname::text, con.contype::text,
                    pg_get_constraintdef(con.oid),
                    CASE WHEN con.contype = 'f' THEN format('%I.%I', rn.nspname, r.relname) END
             FROM pg_constraint con
             JOIN pg_class c ON c.oid = con.conrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_class r ON r.oid = con.confrelid
             LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace
             WHERE (con.contype = 'f'
                    AND (con.conrelid = ANY($1::text[]::regclass[]) OR con.confrelid = ANY($1::text[]::regclass[])))
                OR (con.contype IN ('p', 'u', 'x') AND con.conrelid = ANY($1::text[]::regclass[]))
             ORDER BY con.contype = 'f' DESC, 1, 2",
            &[&tables],
        )
        .await
        .map_err(Error::postgres(context))?;
    for row in &constraints {
        let (table, name, kind, definition): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let name_sql = pg_ident(&name);
        objects.push((
            DeferredObject {
                restore: format!("ALTER TABLE {table} ADD CONSTRAINT {name_sql} {definition}"),
                table: table.clone(),
                name,
                kind: if kind == "f" {
                    ObjectKind::ForeignKey
                } else {
                    ObjectKind::Constraint
                },
                referenced: row.get(4),
            },
            format!("ALTER TABLE {table} DROP CONSTRAINT {name_sql}"),
        ));
    }
    // Indexes that back no constraint (those go with their constraint).
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
        .map_err(Error::postgres(context))?;
    for row in &indexes {
        let (table, index, definition): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        objects.push((
            DeferredObject {
                table,
                name: index.clone(),
                kind: ObjectKind::Index,
                restore: definition,
                referenced: None,
            },
            format!("DROP INDEX {index}"),
        ));
    }
    let mut deferred = Deferred::default();
    for (object, drop) in &objects {
        ledger::record_deferred(tx, plan_id, object).await?;
        tx.batch_execute(drop)
            .await
            .map_err(Error::postgres(context))?;
        match object.kind {
            ObjectKind::ForeignKey => deferred.foreign_keys += 1,
            ObjectKind::Constraint => deferred.constraints += 1,
            ObjectKind::Index => deferred.indexes += 1,
        }
    }
    Ok(deferred)
}
