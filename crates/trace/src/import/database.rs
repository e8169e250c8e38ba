//! Which SQLite schema a file holds: RPD has `rocpd_api` and `rocpd_op`; rocprofv3's rocpd
//! database has `rocpd_kernel_dispatch` / `rocpd_info_agent` (both share `rocpd_string` and a
//! `schema_version` of 3, so only the tables tell them apart); an Nsight Systems export has
//! `StringIds` and CUPTI or session tables. Anything else is refused with the tables it does
//! have.

use std::path::Path;

use super::nsys::Nsys;
use super::rocpd::{Rocpd, is_rocpd};
use super::rpd::Rpd;
use super::sqlite::connect;
use crate::error::{Result, TraceError};

/// An opened SQLite trace, by schema.
pub enum Database {
    Rpd(Rpd),
    Rocpd(Rocpd),
    Nsys(Nsys),
}

/// Opens `path` read-only and recognises its schema.
pub fn open(path: &Path) -> Result<Database> {
    let (conn, tables) = connect(path)?;
    let has = |t: &str| tables.iter().any(|x| x == t);
    if has("rocpd_api") && has("rocpd_op") {
        return Ok(Database::Rpd(Rpd::open(conn, path, tables)?));
    }
    if is_rocpd(&tables) {
        return Ok(Database::Rocpd(Rocpd::open(conn, path, &tables)?));
    }
    if has("StringIds")
        && (tables.iter().any(|t| t.starts_with("CUPTI_ACTIVITY_KIND_"))
            || has("TARGET_INFO_SESSION_START_TIME"))
    {
        return Ok(Database::Nsys(Nsys::open(conn, path, tables)));
    }
    let mut listed: Vec<&str> = tables.iter().map(String::as_str).take(12).collect();
    if tables.len() > 12 {
        listed.push("...");
    }
    Err(TraceError::format(
        path,
        format!(
            "unknown SQLite schema (tables: {}): neither RPD (rocpd_api + rocpd_op), rocprofv3's rocpd (rocpd_kernel_dispatch, rocpd_info_agent) nor an Nsight Systems export (StringIds + CUPTI_ACTIVITY_KIND_*)",
            if listed.is_empty() {
                "none".to_string()
            } else {
                listed.join(", ")
            }
        ),
    ))
}
