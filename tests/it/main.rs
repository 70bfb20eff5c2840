//! pgclipper's integration tests, one binary (one link) with a module per area, against the
//! real MariaDB and Postgres servers that `tools/test` starts. A missing server fails a
//! test: nothing here skips.

mod alkemio;
mod chunks;
mod cli;
mod common;
mod conversions;
mod csv_roundtrip;
mod first_hour;
mod kratos;
mod large_values;
mod operator_view;
mod parquet;
mod recovery;
mod target_schemas;
mod tls;
mod verify;
