//! Both schemas, read once: MySQL's `information_schema` and Postgres' `pg_catalog`,
//! turned into typed tables and columns that `mapping` pairs up.

pub mod mysql;
pub mod postgres;

/// A MySQL column type, parsed from `COLUMN_TYPE`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MyType {
    /// tinyint … bigint; `bytes` is the storage width (1, 2, 3, 4, 8).
    Int {
        bytes: u8,
        unsigned: bool,
    },
    Decimal {
        precision: u32,
        scale: u32,
    },
    Float,
    Double,
    Bit(u32),
    /// char, varchar and the text types; `max_chars` from `CHARACTER_MAXIMUM_LENGTH`.
    Char {
        fixed: bool,
        max_chars: Option<u64>,
    },
    Text,
    /// binary, varbinary and the blob types.
    Binary {
        fixed: bool,
        max_bytes: Option<u64>,
    },
    Json,
    Enum(Vec<String>),
    Set(Vec<String>),
    Date,
    DateTime(u8),
    Timestamp(u8),
    Time(u8),
    Year,
    Other(String),
}

impl MyType {
    pub fn is_integer(&self) -> bool {
        matches!(self, MyType::Int { .. })
    }

    pub fn is_string(&self) -> bool {
        matches!(
            self,
            MyType::Char { .. } | MyType::Text | MyType::Enum(_) | MyType::Set(_) | MyType::Json
        )
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SourceColumn {
    pub name: String,
    pub ty: MyType,
    /// `COLUMN_TYPE` as MySQL prints it, for messages.
    pub column_type: String,
    pub nullable: bool,
    pub charset: Option<String>,
    pub collation: Option<String>,
    pub generated: bool,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SourceTable {
    pub name: String,
    pub columns: Vec<SourceColumn>,
    /// Primary key, or else the first unique key whose columns are all NOT NULL; empty if none.
    pub key: Vec<String>,
    /// `TABLE_ROWS`: an estimate for InnoDB.
    pub estimated_rows: u64,
    pub avg_row_length: u64,
}

impl SourceTable {
    pub fn column(&self, name: &str) -> Option<&SourceColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A Postgres column type, from `pg_type` and the column's typmod.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    /// `numeric(precision, scale)`, or unconstrained.
    Numeric(Option<(u32, u32)>),
    Float4,
    Float8,
    Text,
    Varchar(Option<u32>),
    /// `character(n)` (bpchar).
    Char(u32),
    Uuid,
    Bytea,
    Json,
    Jsonb,
    Date,
    /// Fractional-second precision (6 when unconstrained).
    Timestamp(u8),
    Timestamptz(u8),
    Time(u8),
    Interval,
    Bit(u32),
    Varbit(Option<u32>),
    Enum {
        name: String,
        labels: Vec<String>,
    },
    /// inet (`cidr: false`) or cidr.
    Inet {
        cidr: bool,
    },
    Macaddr,
    /// text[] or varchar[]; `max_chars` of each element for varchar(n)[].
    TextArray {
        varchar: bool,
        max_chars: Option<u32>,
    },
    Other(String),
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TargetColumn {
    pub name: String,
    pub ty: PgType,
    /// `format_type()` as Postgres prints it, for messages.
    pub type_name: String,
    pub not_null: bool,
    pub generated: bool,
    pub has_default: bool,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TargetTable {
    pub schema: String,
    pub name: String,
    pub columns: Vec<TargetColumn>,
    /// User triggers that fire on INSERT, so during the load (COPY fires them).
    #[serde(default)]
    pub insert_triggers: Vec<Trigger>,
}

/// A user trigger of a target table.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Trigger {
    pub name: String,
    /// `BEFORE INSERT … FOR EACH ROW`: it may fill columns of the row being inserted.
    pub before_row: bool,
    pub function: String,
}

impl TargetTable {
    pub fn column(&self, name: &str) -> Option<&TargetColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// `"schema"."table"`, quoted for SQL.
    pub fn qualified(&self) -> String {
        format!("{}.{}", pg_ident(&self.schema), pg_ident(&self.name))
    }
}

/// Quotes a Postgres identifier.
pub fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a MySQL identifier.
pub fn my_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}
