//! Reads the source schema from MySQL/MariaDB's `information_schema`.

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::{MyType, SourceColumn, SourceTable};
use crate::error::{Error, Result};

/// Every base table of `database`, with columns and chosen key, sorted by name.
pub async fn read(conn: &mut Conn, database: &str) -> Result<Vec<SourceTable>> {
    let table_rows: Vec<Row> = conn
        .exec(
            "SELECT TABLE_NAME, TABLE_ROWS, AVG_ROW_LENGTH FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'",
            (database,),
        )
        .await
        .map_err(Error::mysql("reading information_schema.TABLES"))?;
    let mut tables: BTreeMap<String, SourceTable> = table_rows
        .into_iter()
        .map(|r| {
            let name = text(&r, 0);
            let table = SourceTable {
                name: name.clone(),
                columns: Vec::new(),
                key: Vec::new(),
                estimated_rows: number(&r, 1),
                avg_row_length: number(&r, 2),
            };
            (name, table)
        })
        .collect();

    let column_rows: Vec<Row> = conn
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, \
                    CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, \
                    CHARACTER_SET_NAME, COLLATION_NAME, EXTRA \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
             ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (database,),
        )
        .await
        .map_err(Error::mysql("reading information_schema.COLUMNS"))?;
    for r in column_rows {
        let Some(table) = tables.get_mut(&text(&r, 0)) else {
            continue; // a view
        };
        let data_type = text(&r, 2).to_ascii_lowercase();
        let column_type = text(&r, 3);
        let extra = text(&r, 11).to_ascii_uppercase();
        table.columns.push(SourceColumn {
            name: text(&r, 1),
            ty: parse_type(
                &data_type,
                &column_type,
                opt_number(&r, 5),
                number(&r, 6) as u32,
                number(&r, 7) as u32,
                number(&r, 8) as u8,
            ),
            column_type,
            nullable: text(&r, 4) == "YES",
            charset: opt_text(&r, 9),
            collation: opt_text(&r, 10),
            generated: extra.contains("GENERATED")
                || extra.contains("VIRTUAL")
                || extra.contains("PERSISTENT"),
        });
    }

    let index_rows: Vec<Row> = conn
        .exec(
            "SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME, NON_UNIQUE, NULLABLE, SUB_PART \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? \
             ORDER BY TABLE_NAME, INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
            (database,),
        )
        .await
        .map_err(Error::mysql("reading information_schema.STATISTICS"))?;
    choose_keys(&mut tables, index_rows);

    Ok(tables.into_values().collect())
}

/// The chunking key: the primary key, else the first unique index whose columns are all
/// NOT NULL and not prefixes (a prefix or a nullable column does not identify a row).
fn choose_keys(tables: &mut BTreeMap<String, SourceTable>, index_rows: Vec<Row>) {
    struct Index {
        unique: bool,
        usable: bool,
        columns: Vec<String>,
    }
    let mut indexes: BTreeMap<(String, String), Index> = BTreeMap::new();
    let mut order: Vec<(String, String)> = Vec::new();
    for r in index_rows {
        let id = (text(&r, 0), text(&r, 1));
        let entry = indexes.entry(id.clone()).or_insert_with(|| {
            order.push(id.clone());
            Index {
                unique: number(&r, 3) == 0,
                usable: true,
                columns: Vec::new(),
            }
        });
        entry.columns.push(text(&r, 2));
        if text(&r, 4) == "YES" || !matches!(r.as_ref(5), Some(Value::NULL) | None) {
            entry.usable = false;
        }
    }
    for (table, index) in order {
        let Some(t) = tables.get_mut(&table) else {
            continue;
        };
        let idx = &indexes[&(table.clone(), index.clone())];
        if t.key.is_empty() && idx.unique && idx.usable {
            t.key = idx.columns.clone();
        }
    }
}

/// Parses MySQL's type description into a [`MyType`].
pub fn parse_type(
    data_type: &str,
    column_type: &str,
    max_chars: Option<u64>,
    precision: u32,
    scale: u32,
    datetime_precision: u8,
) -> MyType {
    let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
    let int = |bytes| MyType::Int { bytes, unsigned };
    match data_type {
        "tinyint" => int(1),
        "smallint" => int(2),
        "mediumint" => int(3),
        "int" | "integer" => int(4),
        "bigint" => int(8),
        "decimal" | "numeric" => MyType::Decimal { precision, scale },
        "float" => MyType::Float,
        "double" | "real" => MyType::Double,
        "bit" => MyType::Bit(precision.max(1)),
        "char" => MyType::Char {
            fixed: true,
            max_chars,
        },
        "varchar" => MyType::Char {
            fixed: false,
            max_chars,
        },
        "tinytext" | "text" | "mediumtext" | "longtext" => MyType::Text,
        "binary" => MyType::Binary {
            fixed: true,
            max_bytes: max_chars,
        },
        "varbinary" => MyType::Binary {
            fixed: false,
            max_bytes: max_chars,
        },
        "tinyblob" | "blob" | "mediumblob" | "longblob" => MyType::Binary {
            fixed: false,
            max_bytes: None,
        },
        "json" => MyType::Json,
        "enum" => MyType::Enum(parse_labels(column_type)),
        "set" => MyType::Set(parse_labels(column_type)),
        "date" => MyType::Date,
        "datetime" => MyType::DateTime(datetime_precision),
        "timestamp" => MyType::Timestamp(datetime_precision),
        "time" => MyType::Time(datetime_precision),
        "year" => MyType::Year,
        other => MyType::Other(other.to_string()),
    }
}

/// The labels of `enum('a','b''c')` / `set(...)`, unescaped.
pub fn parse_labels(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let inner = &column_type[open + 1..column_type.rfind(')').unwrap_or(column_type.len())];
    let mut labels = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        label.push(n);
                    }
                }
                c => label.push(c),
            }
        }
        labels.push(label);
    }
    labels
}

fn opt_text(r: &Row, i: usize) -> Option<String> {
    match r.as_ref(i) {
        Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Some(Value::Int(n)) => Some(n.to_string()),
        Some(Value::UInt(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn text(r: &Row, i: usize) -> String {
    opt_text(r, i).unwrap_or_default()
}

fn opt_number(r: &Row, i: usize) -> Option<u64> {
    match r.as_ref(i) {
        Some(Value::Int(n)) => Some((*n).max(0) as u64),
        Some(Value::UInt(n)) => Some(*n),
        Some(Value::Bytes(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn number(r: &Row, i: usize) -> u64 {
    opt_number(r, i).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_labels_unescape_quotes_and_commas() {
        assert_eq!(
            parse_labels("enum('a','b''c','d,e','')"),
            vec!["a", "b'c", "d,e", ""]
        );
    }

    #[test]
    fn integer_types_carry_width_and_sign() {
        assert_eq!(
            parse_type("bigint", "bigint(20) unsigned", None, 20, 0, 0),
            MyType::Int {
                bytes: 8,
                unsigned: true
            }
        );
        assert_eq!(
            parse_type("tinyint", "tinyint(1)", None, 3, 0, 0),
            MyType::Int {
                bytes: 1,
                unsigned: false
            }
        );
    }
}
