//! pgclipper moves the data of a MySQL/MariaDB database into a Postgres database whose
//! schema already exists. The modules follow the data: `catalog` → `mapping` → `plan` →
//! `source` → `encode` → `sink` → `post`; `commands` runs them as named steps, `cli` is the
//! edge; `work` is how stages run concurrent work, `workdir` the files on disk.

pub mod canon;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod encode;
pub mod error;
pub mod mapping;
pub mod plan;
pub mod post;
pub mod report;
pub mod sink;
pub mod source;
pub mod tls;
pub mod url;
pub mod verify;
pub mod work;
pub mod workdir;

pub use error::{Error, Exit, Result};
