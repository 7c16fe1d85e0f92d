//! Identity service tests: the real tonic server on 127.0.0.1:0, called through the generated
//! clients. They run on SQLite by default and on PostgreSQL + Redis when `TT_TEST_DATABASE_URL`
//! and `TT_TEST_REDIS_URL` are set.

mod account;
mod admin;
mod auth;
mod support;
mod tokens;
