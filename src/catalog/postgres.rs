//! Reads the target schema from Postgres' `pg_catalog`.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use super::{PgType, TargetColumn, TargetTable, Trigger};
use crate::error::{Error, Result};

/// Every ordinary or partitioned table of `schema`, with its columns in order.
pub async fn read(client: &Client, schema: &str) -> Result<Vec<TargetTable>> {
    let exists = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .await
        .map_err(Error::postgres("reading the target catalog"))?;
    if !exists.get::<_, bool>(0) {
        return Err(Error::Usage(format!(
            "--target-schema {schema}: the target database has no schema of that name (its tables are created by the application's migrations)"
        )));
    }
    // Domains are resolved to their base type; arrays report their element type.
    let rows = client
        .query(
            "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod),
                    bt.typname::text, bt.typtype::text, a.atttypmod, a.attnotnull,
                    a.attgenerated <> '' AS generated, a.atthasdef OR a.attidentity <> '',
                    CASE WHEN bt.typtype = 'e' THEN
                        ARRAY(SELECT enumlabel::text FROM pg_enum WHERE enumtypid = bt.oid ORDER BY enumsortorder)
                    END,
                    et.typname::text
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             JOIN pg_type t ON t.oid = a.atttypid
             JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
             LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
             ORDER BY c.relname, a.attnum",
            &[&schema],
        )
        .await
        .map_err(Error::postgres("reading pg_catalog"))?;

    let mut tables: BTreeMap<String, TargetTable> = BTreeMap::new();
    for r in rows {
        let table: String = r.get(0);
        let typname: String = r.get(3);
        let typtype: String = r.get(4);
        let typmod: i32 = r.get(5);
        let labels: Option<Vec<String>> = r.get(9);
        let element: Option<String> = r.get(10);
        let type_name: String = r.get(2);
        let ty = if typtype == "e" {
            PgType::Enum {
                name: typname.clone(),
                labels: labels.unwrap_or_default(),
            }
        } else {
            parse_type(&typname, typmod, element.as_deref())
        };
        tables
            .entry(table.clone())
            .or_insert_with(|| TargetTable {
                schema: schema.to_string(),
                name: table,
                columns: Vec::new(),
                insert_triggers: Vec::new(),
            })
            .columns
            .push(TargetColumn {
                name: r.get(1),
                ty,
                type_name,
                not_null: r.get(6),
                generated: r.get(7),
                has_default: r.get(8),
            });
    }
    // User triggers that fire on INSERT (tgtype: 1 row, 2 before, 4 insert).
    let triggers = client
        .query(
            "SELECT c.relname::text, t.tgname::text, (t.tgtype & 3) = 3, p.oid::regproc::text
             FROM pg_trigger t
             JOIN pg_class c ON c.oid = t.tgrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_proc p ON p.oid = t.tgfoid
             WHERE n.nspname = $1 AND NOT t.tgisinternal AND t.tgenabled <> 'D'
               AND (t.tgtype & 4) <> 0
             ORDER BY 1, 2",
            &[&schema],
        )
        .await
        .map_err(Error::postgres("reading the target's triggers"))?;
    for r in triggers {
        let table: String = r.get(0);
        if let Some(t) = tables.get_mut(&table) {
            t.insert_triggers.push(Trigger {
                name: r.get(1),
                before_row: r.get(2),
                function: r.get(3),
            });
        }
    }
    Ok(tables.into_values().collect())
}

/// Maps a base type name and typmod to a [`PgType`].
pub fn parse_type(typname: &str, typmod: i32, element: Option<&str>) -> PgType {
    let precision = |default: u8| {
        if typmod < 0 {
            default
        } else {
            typmod as u8
        }
    };
    match typname {
        "bool" => PgType::Bool,
        "int2" => PgType::Int2,
        "int4" => PgType::Int4,
        "int8" => PgType::Int8,
        "numeric" => PgType::Numeric((typmod >= 4).then(|| {
            let m = (typmod - 4) as u32;
            ((m >> 16) & 0xffff, m & 0xffff)
        })),
        "float4" => PgType::Float4,
        "float8" => PgType::Float8,
        // Not `name`: its input silently cuts values beyond 63 bytes, so no rule takes it.
        "text" | "citext" => PgType::Text,
        "varchar" => PgType::Varchar((typmod >= 4).then(|| (typmod - 4) as u32)),
        "bpchar" => PgType::Char(if typmod >= 4 { (typmod - 4) as u32 } else { 1 }),
        "uuid" => PgType::Uuid,
        "bytea" => PgType::Bytea,
        "json" => PgType::Json,
        "jsonb" => PgType::Jsonb,
        "date" => PgType::Date,
        "timestamp" => PgType::Timestamp(precision(6)),
        "timestamptz" => PgType::Timestamptz(precision(6)),
        "time" => PgType::Time(precision(6)),
        "interval" => PgType::Interval,
        "inet" => PgType::Inet { cidr: false },
        "cidr" => PgType::Inet { cidr: true },
        "macaddr" => PgType::Macaddr,
        "bit" => PgType::Bit(typmod.max(1) as u32),
        "varbit" => PgType::Varbit((typmod > 0).then_some(typmod as u32)),
        _ if matches!(element, Some("text" | "varchar")) => PgType::TextArray {
            varchar: element == Some("varchar"),
            // An array column's typmod is its elements'.
            max_chars: (element == Some("varchar") && typmod >= 4).then(|| (typmod - 4) as u32),
        },
        other => PgType::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typmods_decode() {
        assert_eq!(parse_type("varchar", 132, None), PgType::Varchar(Some(128)));
        assert_eq!(parse_type("varchar", -1, None), PgType::Varchar(None));
        assert_eq!(
            parse_type("numeric", ((10 << 16) | 2) + 4, None),
            PgType::Numeric(Some((10, 2)))
        );
        assert_eq!(parse_type("timestamp", -1, None), PgType::Timestamp(6));
        assert_eq!(parse_type("timestamp", 3, None), PgType::Timestamp(3));
        assert_eq!(
            parse_type("_text", -1, Some("text")),
            PgType::TextArray {
                varchar: false,
                max_chars: None
            }
        );
    }
}

/// A column that draws its values from a sequence.
#[derive(Debug, Clone)]
pub struct DrawnSequence {
    /// The table, as `regclass` prints it.
    pub table: String,
    pub column: String,
    /// The sequence, as `regclass` prints it.
    pub sequence: String,
}

/// Every (table, column, sequence) where a column of `tables` draws from a sequence: an
/// identity or serial column (the sequence is owned), or any column whose default calls
/// `nextval` on a sequence, owned or not (pg_dump output of ported schemas).
pub async fn sequences_drawn(client: &Client, tables: &[String]) -> Result<Vec<DrawnSequence>> {
    let rows = client
        .query(
            "SELECT c.oid::regclass::text, a.attname::text, s.oid::regclass::text
             FROM pg_class c
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             JOIN pg_depend d ON d.refobjid = c.oid AND d.refobjsubid = a.attnum
                              AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
             JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
             WHERE c.oid = ANY($1::text[]::regclass[])
             UNION
             SELECT c.oid::regclass::text, a.attname::text, s.oid::regclass::text
             FROM pg_class c
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
             JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                              AND d.refclassid = 'pg_class'::regclass
             JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
             WHERE c.oid = ANY($1::text[]::regclass[])
             ORDER BY 3, 1, 2",
            &[&tables],
        )
        .await
        .map_err(Error::postgres(
            "reading the sequences the target's columns draw from",
        ))?;
    Ok(rows
        .iter()
        .map(|r| DrawnSequence {
            table: r.get(0),
            column: r.get(1),
            sequence: r.get(2),
        })
        .collect())
}
