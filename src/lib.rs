//! pgclipper moves the data of a MySQL/MariaDB database into a Postgres database whose schema
//! already exists. The modules follow the data: `catalog` → `mapping` → `plan` → `source`
//! → `encode` → `sink` → `post`, wired together by `pipeline` and driven by `cli`.

pub mod catalog;
pub mod cli;
pub mod config;
pub mod encode;
pub mod error;
pub mod mapping;
pub mod pipeline;
pub mod plan;
pub mod post;
pub mod sink;
pub mod source;
pub mod workdir;

pub use error::{Error, Exit, Result};
