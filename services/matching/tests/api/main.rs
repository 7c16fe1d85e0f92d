//! Service tests: identity, profiles and matching served by the real server builder on
//! 127.0.0.1:0, called through the generated clients with real tokens. SQLite and the
//! in-process cache by default; PostgreSQL and Redis with `TT_TEST_DATABASE_URL` /
//! `TT_TEST_REDIS_URL`.

mod catalog;
mod matches;
mod mentorships;
mod operations;
mod support;
