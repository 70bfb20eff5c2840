//! Around the load: foreign keys, unique constraints and secondary indexes taken off before
//! it and put back after it (recorded in the ledger meanwhile); every sequence owned by a
//! loaded column set past the column's maximum, so the application's next insert does not
//! collide with a copied row.

use std::collections::HashMap;
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
                "INSERT INTO pgclipper.sequences (plan_id, sequence_name, last_value, is_called)
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
            "SELECT sequence_name, last_value, is_called FROM pgclipper.sequences WHERE plan_id = $1",
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
/// their primary keys, unique and exclusion constraints and secondary indexes: chunks then
/// load in any order, and each index is built once from sorted rows instead of row by row
/// (primary-key inserts, a random uuid key above all, were a quarter of Postgres' work
/// during the load). Duplicate keys cannot arise from the load (the ledger loads each chunk
/// once), and would still be refused when the primary key is put back.
/// Every object's re-creating statement goes into the ledger in the caller's transaction
/// (the one that records the plan), with its drop, so a crash can never lose one.
/// [`restore_deferred`] puts them back.
pub async fn defer_objects(
    tx: &tokio_postgres::Transaction<'_>,
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
        .map_err(Error::target(context))?;
    for row in &constraints {
        let (table, name, kind, definition): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let name_sql = pg_ident(&name);
        objects.push((
            DeferredObject {
                restore: format!("ALTER TABLE {table} ADD CONSTRAINT {name_sql} {definition}"),
                table: table.clone(),
                name,
                kind: if kind == "f" { "foreign" } else { "constraint" }.to_string(),
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
        .map_err(Error::target(context))?;
    for row in &indexes {
        let (table, index, definition): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        objects.push((
            DeferredObject {
                table,
                name: index.clone(),
                kind: "index".to_string(),
                restore: definition,
                referenced: None,
            },
            format!("DROP INDEX {index}"),
        ));
    }
    let mut deferred = Deferred::default();
    for (object, drop) in &objects {
        tx.execute(
            "INSERT INTO pgclipper.deferred_constraints
                 (plan_id, table_name, object_name, kind, restore_sql, referenced_table)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &plan_id,
                &object.table,
                &object.name,
                &object.kind,
                &object.restore,
                &object.referenced,
            ],
        )
        .await
        .map_err(Error::target(context))?;
        tx.batch_execute(drop)
            .await
            .map_err(Error::target(context))?;
        match object.kind.as_str() {
            "foreign" => deferred.foreign_keys += 1,
            "constraint" => deferred.constraints += 1,
            _ => deferred.indexes += 1,
        }
    }
    Ok(deferred)
}

/// One object taken off for the load, as the ledger records it.
#[derive(Debug, Clone)]
struct DeferredObject {
    table: String,
    name: String,
    /// `foreign`, `constraint` (primary key, unique, exclusion) or `index`.
    kind: String,
    restore: String,
    /// For a foreign key, the table it references (`None` in ledgers of older versions).
    referenced: Option<String>,
}

/// Which deferred object a free session restores next. Keys and indexes go first, largest
/// table first (the longest builds start early). A foreign key waits until the keys and
/// indexes of its own table and of the table it references are back (adding it locks both
/// tables against index builds), not for every table's: its validation overlaps the builds
/// of unrelated tables.
struct RestoreOrder {
    waiting: Vec<DeferredObject>,
    /// Keys and indexes not restored yet (waiting or being built), per table.
    unbuilt: HashMap<String, usize>,
    failed: bool,
}

enum Next {
    Restore(DeferredObject),
    /// Everything left waits for builds in progress.
    Wait,
    Done,
}

impl RestoreOrder {
    /// `objects` ordered keys and indexes first, largest table first.
    fn new(objects: Vec<DeferredObject>) -> Self {
        let mut unbuilt = HashMap::new();
        for o in objects.iter().filter(|o| o.kind != "foreign") {
            *unbuilt.entry(o.table.clone()).or_insert(0) += 1;
        }
        RestoreOrder {
            waiting: objects,
            unbuilt,
            failed: false,
        }
    }

    fn next(&mut self) -> Next {
        if self.failed || self.waiting.is_empty() {
            return Next::Done;
        }
        let built = |table: &str| self.unbuilt.get(table).is_none_or(|&n| n == 0);
        let ready = self.waiting.iter().position(|o| {
            o.kind != "foreign"
                || match &o.referenced {
                    Some(referenced) => built(&o.table) && built(referenced),
                    None => self.unbuilt.values().all(|&n| n == 0),
                }
        });
        match ready {
            Some(i) => Next::Restore(self.waiting.remove(i)),
            None => Next::Wait,
        }
    }

    fn restored(&mut self, object: &DeferredObject) {
        if object.kind != "foreign" {
            if let Some(n) = self.unbuilt.get_mut(&object.table) {
                *n -= 1;
            }
        }
    }
}

/// Re-creates every object [`defer_objects`] took off for `plan_id`, on up to `sessions`
/// connections at once with a large `maintenance_work_mem` (Postgres validates each
/// foreign key's rows as it adds it, with that memory). Each object leaves the ledger in
/// the transaction that re-creates it. Returns how many objects were restored.
pub async fn restore_deferred(url: &DbUrl, plan_id: &str, sessions: usize) -> Result<usize> {
    let client = sink::connect(url).await?;
    let rows = client
        .query(
            "SELECT table_name, object_name, kind, restore_sql, referenced_table
             FROM pgclipper.deferred_constraints
             WHERE plan_id = $1
             ORDER BY kind = 'foreign',
                      pg_total_relation_size(to_regclass(table_name)) DESC NULLS LAST,
                      table_name, object_name",
            &[&plan_id],
        )
        .await
        .map_err(Error::target("reading deferred constraints and indexes"))?;
    let objects: Vec<DeferredObject> = rows
        .iter()
        .map(|r| DeferredObject {
            table: r.get(0),
            name: r.get(1),
            kind: r.get(2),
            restore: r.get(3),
            referenced: r.get(4),
        })
        .collect();
    let count = objects.len();
    let order = Arc::new(Mutex::new(RestoreOrder::new(objects)));
    let progress = Arc::new(tokio::sync::Notify::new());
    let mut workers = Vec::new();
    for _ in 0..sessions.max(1) {
        let (order, progress, url, plan_id) = (
            order.clone(),
            progress.clone(),
            url.clone(),
            plan_id.to_string(),
        );
        workers.push(tokio::spawn(async move {
            let outcome = restore_worker(&order, &progress, &url, &plan_id).await;
            if outcome.is_err() {
                order.lock().expect("restore order lock").failed = true;
                progress.notify_waiters();
            }
            outcome
        }));
    }
    for worker in workers {
        worker
            .await
            .map_err(|e| Error::Environment(format!("a restoring session panicked: {e}")))??;
    }
    Ok(count)
}

async fn restore_worker(
    order: &Mutex<RestoreOrder>,
    progress: &tokio::sync::Notify,
    url: &DbUrl,
    plan_id: &str,
) -> Result<()> {
    let mut client = None;
    loop {
        // Registered before the order is looked at, so a build finishing in between wakes it.
        let notified = progress.notified();
        let next = order.lock().expect("restore order lock").next();
        let object = match next {
            Next::Done => return Ok(()),
            Next::Wait => {
                notified.await;
                continue;
            }
            Next::Restore(object) => object,
        };
        if client.is_none() {
            let c = sink::connect(url).await?;
            c.batch_execute("SET maintenance_work_mem = '1GB'")
                .await
                .map_err(Error::target("raising maintenance_work_mem"))?;
            client = Some(c);
        }
        let client = client.as_mut().expect("connected above");
        let DeferredObject {
            table, name, kind, ..
        } = &object;
        let context = format!("restoring {kind} {name} on {table}");
        let started = std::time::Instant::now();
        let tx = client
            .transaction()
            .await
            .map_err(Error::target(&context))?;
        tx.batch_execute(&object.restore)
            .await
            .map_err(Error::target(&context))?;
        tx.execute(
            "DELETE FROM pgclipper.deferred_constraints WHERE plan_id = $1 AND table_name = $2 AND object_name = $3",
            &[&plan_id, table, name],
        )
        .await
        .map_err(Error::target(&context))?;
        tx.commit().await.map_err(Error::target(&context))?;
        tracing::debug!(table = %table, object = %name, kind = %kind, seconds = started.elapsed().as_secs_f64(), "Restored.");
        order.lock().expect("restore order lock").restored(&object);
        progress.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(table: &str, name: &str, kind: &str, referenced: Option<&str>) -> DeferredObject {
        DeferredObject {
            table: table.into(),
            name: name.into(),
            kind: kind.into(),
            restore: String::new(),
            referenced: referenced.map(Into::into),
        }
    }

    fn take(order: &mut RestoreOrder) -> Option<String> {
        match order.next() {
            Next::Restore(o) => Some(o.name),
            Next::Wait => None,
            Next::Done => Some("done".into()),
        }
    }

    #[test]
    fn a_foreign_key_waits_for_the_keys_of_both_its_tables_only() {
        let mut order = RestoreOrder::new(vec![
            object("events", "events_pkey", "constraint", None),
            object("users", "users_pkey", "constraint", None),
            object("tags", "tags_pkey", "constraint", None),
            object("events", "events_user_fk", "foreign", Some("users")),
            object("tags", "tags_self_fk", "foreign", Some("tags")),
        ]);
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
    fn a_foreign_key_of_an_older_ledger_waits_for_every_key() {
        let mut order = RestoreOrder::new(vec![
            object("a", "a_pkey", "constraint", None),
            object("b", "b_fk", "foreign", None),
        ]);
        let a_pkey = order.waiting[0].clone();
        assert_eq!(take(&mut order).as_deref(), Some("a_pkey"));
        assert_eq!(take(&mut order), None);
        order.restored(&a_pkey);
        assert_eq!(take(&mut order).as_deref(), Some("b_fk"));
    }
}
