//! Analytics' rules without I/O: the event registry and its checks, local calendars over the
//! UTC rollups, and the export formats.

pub mod calendar;
pub mod export;
pub mod schema;
